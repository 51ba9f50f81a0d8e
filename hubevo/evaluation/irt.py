"""Stage 2, evaluate: a two-parameter item-response model of per-example outcomes (pure numpy).

`P(model i solves item j) = sigmoid(a_j * (theta_i - b_j))`: an ability per model, a discrimination
and a difficulty per item, fitted by maximum a posteriori (weak normal priors on theta, b and
log a; Adam on the exact gradient) on a models x items matrix of outcomes in [0, 1]. A new model's
ability is then read from the items it was scored on, the items fixed (as tinyBenchmarks' p-IRT
does). A few hundred items and a dozen models fit in well under a second; numpy keeps the
evaluation stage free of a new dependency (py-irt needs pyro, girth a scipy optimiser per item).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRIOR_THETA, PRIOR_B, PRIOR_LOG_A = 1.0, 2.0, 0.7  # prior standard deviations


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


@dataclass(frozen=True)
class ItemModel:
    """Fitted item parameters, and the abilities of the models they were fitted on."""

    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray

    def probability(self, theta: float, items: np.ndarray | slice = slice(None)) -> np.ndarray:
        return sigmoid(self.a[items] * (theta - self.b[items]))


def fit(outcomes: np.ndarray, *, steps: int = 800, lr: float = 0.05) -> ItemModel:
    """MAP fit of a 2PL model to `outcomes` (models x items, values in [0, 1])."""
    y = np.clip(np.asarray(outcomes, dtype=float), 0.0, 1.0)
    m, n = y.shape
    rate = y.mean(axis=0).clip(0.02, 0.98)
    params = [np.zeros(m), -np.log(rate / (1 - rate)), np.zeros(n)]  # theta, b, log a
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    for step in range(1, steps + 1):
        theta, b, log_a = params
        a = np.exp(log_a)
        residual = sigmoid(a * (theta[:, None] - b[None, :])) - y  # d(-loglik)/dz
        grads = [(residual * a).sum(axis=1) + theta / PRIOR_THETA ** 2,
                 -(residual * a).sum(axis=0) + b / PRIOR_B ** 2,
                 (residual * a * (theta[:, None] - b[None, :])).sum(axis=0) + log_a / PRIOR_LOG_A ** 2]
        for p, g, mom in zip(params, grads, moments, strict=True):
            mom[0] = 0.9 * mom[0] + 0.1 * g
            mom[1] = 0.999 * mom[1] + 0.001 * g * g
            p -= lr * (mom[0] / (1 - 0.9 ** step)) / (np.sqrt(mom[1] / (1 - 0.999 ** step)) + 1e-8)
    theta, b, log_a = params
    return ItemModel(a=np.exp(log_a), b=b, theta=theta)


def ability(model: ItemModel, items: np.ndarray, values: np.ndarray, *, prior: float = 3.0) -> tuple[float, float]:
    """MAP ability of a new model from its `values` on `items` (Newton steps), and its standard error (the
    inverse square root of the observed information)."""
    y = np.clip(np.asarray(values, dtype=float), 0.0, 1.0)
    a = model.a[items]
    theta = 0.0
    for _ in range(50):
        p = model.probability(theta, items)
        gradient = float((a * (y - p)).sum()) - theta / prior ** 2
        information = float((a * a * p * (1 - p)).sum()) + 1 / prior ** 2
        step = gradient / information
        theta += float(np.clip(step, -1.0, 1.0))
        if abs(step) < 1e-6:
            break
    p = model.probability(theta, items)
    information = float((a * a * p * (1 - p)).sum()) + 1 / prior ** 2
    return theta, information ** -0.5
