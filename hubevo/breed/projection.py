"""Stage 4, breed, reading side: a merge without genes read as per-block task arithmetic.

model_stock (Jang et al. 2024) has no parameters to search: per tensor (per row) mergekit
moves the parents' average towards the base by a ratio t it computes from the angle between
the task vectors, which is task arithmetic with every weight t/N. To let CMA-ES start at such
a merge, `task_arithmetic_weights` fits, for each gene block of a parameter space (a layer
group and a module filter), the per-parent weights w that make base + sum_i w_i (parent_i -
base) closest to the merged tensors in the least-squares sense. The fit reads the parents' and
the base's tensors through mergekit's lazy loader, one tensor at a time; the merged tensors
come from the caller (the runner's resident model).

A tensor belongs to the block of its layer (`model.layers.<i>.`) whose module filter it
contains, else to that layer group's catch-all; tensors outside the layers go with the first
group if they come before the first layer (embeddings) and with the last otherwise (final
norm, output head), as mergekit plans them with the first and last slice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import torch

LAYER = re.compile(r"\.layers\.(\d+)\.")
RIDGE = 1e-8  # relative to the Gram matrix's trace: keeps the solve defined when two task vectors coincide


def block_index(name: str, *, groups: Sequence[tuple[int, int]], modules: Sequence[str | None],
                after_layers: bool) -> int:
    """The index of tensor `name`'s block in [(group, module) for group in groups for module in modules]."""
    match = LAYER.search(name)
    if match is None:
        group = len(groups) - 1 if after_layers else 0
    else:
        layer = int(match.group(1))
        group = next((g for g, (start, end) in enumerate(groups) if start <= layer < end), len(groups) - 1)
    module = next(m for m, f in enumerate(modules) if f is None or f in name)
    return group * len(modules) + module


def least_squares_weights(gram: np.ndarray, target: np.ndarray) -> list[float]:
    """w minimising |sum_i w_i d_i - m|^2 given gram[i, j] = <d_i, d_j> and target[i] = <d_i, m>."""
    ridge = RIDGE * max(float(np.trace(gram)), 1e-30)
    return [float(w) for w in np.linalg.solve(gram + ridge * np.eye(len(gram)), target)]


def task_arithmetic_weights(
        merged: Iterable[tuple[str, torch.Tensor]], *, parents: Sequence[str], base: str,
        groups: Sequence[tuple[int, int]], modules: Sequence[str | None]) -> list[list[float]] | None:
    """Per block (groups x modules, module-major within a group), the parents' task-arithmetic weights that
    best reproduce `merged` (name, tensor pairs in model order) over the model folder `base`.

    A block no tensor falls in gets weights 1/N (the parents' average); None if no merged tensor is found
    under its name in every folder."""
    from mergekit.io import LazyTensorLoader

    loaders = [LazyTensorLoader.from_disk(path, lazy_unpickle=False) for path in (base, *parents)]
    n, blocks = len(parents), len(groups) * len(modules)
    gram, target = np.zeros((blocks, n, n)), np.zeros((blocks, n))
    seen_layer = False
    for name, tensor in merged:
        seen_layer = seen_layer or LAYER.search(name) is not None
        if any(name not in loader.index.tensor_paths for loader in loaders):
            continue  # e.g. an output head tied to the embeddings in the folders
        b = block_index(name, groups=groups, modules=modules, after_layers=seen_layer)
        base_t = loaders[0].get_tensor(name).double().flatten()
        deltas = torch.stack([loader.get_tensor(name).double().flatten() - base_t for loader in loaders[1:]])
        gram[b] += (deltas @ deltas.T).numpy()
        target[b] += (deltas @ (tensor.detach().cpu().double().flatten() - base_t)).numpy()
    for loader in loaders:
        loader.flush()
    if not gram.any():
        return None
    return [least_squares_weights(gram[b], target[b]) if gram[b].any() else [1.0 / n] * n for b in range(blocks)]
