"""Why a model is or is not its run's champion, in the run's own words.

The core records the champion rule's decision beside each run's tables (`champion.json`, read into
`RunData.decision`); its `text` is the sentence the terminal prints after "why:" and the model cards
carry. Every place in the Space that says why prints that sentence as it is: the run summary, the
champion's leaderboard row and the model page. Nothing here compares two models itself. A run written
before the file existed has no recorded decision: those places then say what they said before it.
"""

from __future__ import annotations

import pandas as pd

from space.data.loading import RunData
from space.data.numbers import with_error

NOT_FINALIST = "not a finalist: the champion rule compares only finalists"


def champion_of(run: RunData) -> str | None:
    """The champion's id as the decision records it (None without a recorded decision or champion)."""
    cid = (run.decision or {}).get("champion")
    return str(cid) if cid else None


def is_finalist(run: RunData, model_id: str) -> bool:
    """Whether the model was scored in the finals: it has a validation score, or the decision names it."""
    decision = run.decision or {}
    if model_id in (decision.get("champion"), decision.get("holder"), decision.get("challenger")):
        return True
    row = run.row(model_id)
    value = row.get("validation") if row is not None else None
    return value is not None and not pd.isna(value)


def model_verdict(run: RunData, model_id: str) -> str | None:
    """Why this model is or is not the champion: the recorded sentence for the champion, "not champion: " and
    that sentence for another finalist, `NOT_FINALIST` for everyone else; None without a recorded decision."""
    if run.reason is None:
        return None
    if model_id == champion_of(run):
        return run.reason
    return f"not champion: {run.reason}" if is_finalist(run, model_id) else NOT_FINALIST


def champion_scores(run: RunData, model_id: str) -> str:
    """The champion's own scores for its summary line: validation and fitness, each with its error when known."""
    row = run.row(model_id)
    parts = [(label, with_error(row.get(column), row.get(f"{column}_stderr")))
             for label, column in (("validation", "validation"), ("fitness", "fitness"))]
    return ", ".join(f"{label} {text}" for label, text in parts if text != "-")


MARKDOWN_SPECIAL = "\\`*_[]<>"


def markdown_text(text) -> str:
    """`text` as markdown shows it literally (a name like `std_ties_a_b` would otherwise turn italic)."""
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIAL else c for c in str(text))
