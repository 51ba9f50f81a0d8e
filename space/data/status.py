"""Each run's status in the controller's shape, whether the scheduler manages it or it was only found on disk
or the Hub (the Status tab's rows, before `space.pages.status_table` writes them).

`local_status` gives a found run the controller's status shape, and `saved_status` the same
from the small `status.json` a live run writes with its state (a tick then reads a few
hundred bytes, not the whole state); `merge_statuses` puts the controller's runs first. A run's
best fitness is the best any candidate scored (the champion is picked by the champion rule and
may score lower).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from hubevo.state.runstate import RunStatus, run_status
from space.data.loading import RunData, rounded
from space.data.numbers import format_duration
from space.data.ranking import best_first


def local_status(run: RunData, *, now: float | None = None) -> dict:
    """A status dict (the controller's shape) for a run found on disk that no controller manages."""
    if run.state is None:
        budget = run.config.get("budget", {}) or {}
        return {"name": run.name, "generations": budget.get("generations"), "best_fitness": best_fitness(run),
                "eta_s": None, "state": "published" if run.source == "hub" else "finished", "generation": None,
                "candidate": None, "candidates": None, "elapsed_s": None, "message": run.where}
    return saved_status(run_status(run.state), name=run.name, config=run.config, saved_at=run.saved_at, now=now,
                        best=best_fitness(run))


def saved_status(status: RunStatus, *, name: str, config: Mapping, saved_at: float | None,
                 now: float | None = None, best: float | None = None) -> dict:
    """The status dict of a local run from the `RunStatus` saved with its state (no need to parse the state);
    `best`: the run's best fitness, which the status file does not hold (it keeps the champion's)."""
    if status.finished:
        phase, message = "finished", status.stop_reason or ""
    else:
        ago = format_duration((time.time() if now is None else now) - saved_at) if saved_at else "?"
        phase, message = "unfinished", f"not managed here; state saved {ago} ago (resume with `hubevo evolve --resume`)"
    return {"name": name, "generations": (config.get("budget", {}) or {}).get("generations"),
            "best_fitness": best, "eta_s": None, "state": phase,
            "generation": status.generations_done, "candidate": status.candidate, "candidates": status.candidates,
            "elapsed_s": status.elapsed_s, "message": message}


def best_fitness(run: RunData) -> float | None:
    """The best fitness any fully evaluated candidate of the run scored; None before any did."""
    table = run.results
    ok = table[(table["status"] == "ok") & table["fitness"].notna()]
    return rounded(best_first(ok).iloc[0]["fitness"]) if len(ok) else None


def merge_statuses(managed: Sequence[Mapping], found: Sequence[Mapping]) -> list[Mapping]:
    """The controller's runs first, then runs found on disk or on the Hub under another name. A controller's
    run takes its best fitness from the run found under its name (the controller reports the champion's)."""
    found_by_name = {s.get("name"): s for s in found}
    names = {s.get("name") for s in managed}
    return [*({**s, "best_fitness": found_by_name.get(s.get("name"), {}).get("best_fitness")} for s in managed),
            *(s for s in found if s.get("name") not in names)]
