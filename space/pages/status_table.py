"""The Status tab's table: one row per run, as `space.data.status` gives them (the scheduler's runs first).

`status_table` writes generations done of the budget, the candidates evaluated in the generation under
way (none once a run has ended), durations (no time left once it has ended) and the run's best fitness
(the best any candidate scored; the champion is picked by the champion rule and may score lower).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from hubevo.state.clock import range_text
from space.data.numbers import MISSING, format_duration, score_text

STATUS_COLUMNS = ["run", "state", "generations done", "evaluated this generation", "elapsed", "time left",
                  "best fitness", "message"]
ENDED = ("finished", "failed", "stopped", "published")


def status_table(statuses: Sequence[Mapping]) -> pd.DataFrame:
    """One row per run: state, generations done of the budget, candidates evaluated in the generation under way,
    elapsed and remaining time (none once the run has ended), the run's best fitness."""
    rows = []
    for s in statuses:
        ended = s.get("state") in ENDED
        rows.append({
            "run": s.get("name"), "state": s.get("state"),
            "generations done": _of(s.get("generation"), s.get("generations")),
            "evaluated this generation": MISSING if ended else _of(s.get("candidate"), s.get("candidates")),
            "elapsed": format_duration(s.get("elapsed_s")),
            "time left": MISSING if ended else time_left_text(s.get("eta_low_s"), s.get("eta_s")),
            "best fitness": score_text(s.get("best_fitness")), "message": s.get("message") or "",
        })
    return pd.DataFrame(rows, columns=STATUS_COLUMNS)


def time_left_text(low, high) -> str:
    """The run's estimate as a range (`hubevo.state.clock`), or one duration where only one is known."""
    if low is None or high is None:
        return format_duration(high)
    return range_text(low, high)


def _of(done, total) -> str:
    if done is None:
        return MISSING
    return f"{done} of {total}" if total is not None else str(done)
