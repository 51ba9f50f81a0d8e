"""Stage 3's order over evaluations of any status: full ones by fitness, raced-out ones by how far they got.

What a search strategy minimises (`ranked_losses`): a raced-out or failed candidate is ranked after
every fully evaluated one, so racing never hands CMA-ES a fitness it did not measure.
"""

from __future__ import annotations

from collections.abc import Sequence

from hubevo.evaluation.records import Evaluation


def raced_out(ev: Evaluation) -> bool:
    return ev.status == "raced_out"


def order_key(ev: Evaluation | None) -> tuple:
    """Sort key, higher is better: full evaluations by fitness, then raced-out ones by how far they got."""
    if ev is None:
        return (0, 0, 0.0)
    if ev.status == "ok":
        return (3, 0, ev.fitness)
    if raced_out(ev):  # its fitness is unknown; its scores are estimates on `examples` examples
        return (2, ev.examples, sum(ev.scores.values()) / max(len(ev.scores), 1))
    return (1, 0, 0.0)


def ranked_losses(evaluations: Sequence[Evaluation | None]) -> list[float]:
    """Losses to minimise: -fitness for full evaluations; everyone else ranked after the worst of them."""
    ok = [-ev.fitness for ev in evaluations if ev is not None and ev.status == "ok"]
    floor = max(ok, default=0.0) + 1.0
    others = sorted({order_key(ev) for ev in evaluations if ev is None or ev.status != "ok"}, reverse=True)
    return [-ev.fitness if ev is not None and ev.status == "ok" else floor + others.index(order_key(ev))
            for ev in evaluations]
