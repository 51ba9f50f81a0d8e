"""How the Space writes a number: a score in one format on every page, 3 decimals, with its standard error where
one is known; a duration in hours and minutes, or minutes and seconds.

`score_text` and `with_error` write one score, `format_duration` a number of seconds; `styled` gives a table
to Gradio as a pandas `Styler`, so its cells show that format while the values stay numbers (a click on a
header still sorts numerically). A score column whose error column is named with `ERROR_SUFFIX` shows
`0.612 ± 0.012` and the error column itself is not shown.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from hubevo.state.clock import duration_text

DECIMALS = 3
MISSING = "-"
ERROR_SUFFIX = " ±"  # "validation ±" holds the standard error of "validation"


def score_text(value) -> str:
    """A score as every page writes it: 3 decimals, `-` when missing."""
    return MISSING if _missing(value) else f"{float(value):.{DECIMALS}f}"


def with_error(value, stderr=None) -> str:
    """`0.612 ± 0.012` where the standard error is known, else the score alone."""
    if _missing(value):
        return MISSING
    return score_text(value) if _missing(stderr) else f"{score_text(value)} ± {float(stderr):.{DECIMALS}f}"


def format_duration(seconds: float | None) -> str:
    """`42 s`, `3 m 07 s`, `1 h 05 m` (the words of every report: `hubevo.state.clock.duration_text`); `-` when
    unknown."""
    if _missing(seconds):
        return MISSING
    return duration_text(seconds)


def error_column(column: str) -> str:
    return f"{column}{ERROR_SUFFIX}"


def styled(table: pd.DataFrame, *, scores: Sequence[str]):
    """`table` without its error columns, its `scores` written as `score_text` (with `± error` where the table has
    that score's error column); a table with no rows is given back as it is (a Styler of nothing shows nothing)."""
    table = table.reset_index(drop=True)  # rows are picked by label below
    errors = {c: error_column(c) for c in scores if error_column(c) in table.columns}
    shown = table.drop(columns=list(errors.values()))
    if not len(shown):
        return shown
    style = shown.style.format(score_text, subset=[c for c in scores if c in shown.columns])
    for column, error in errors.items():
        # one format per distinct written error: a few dozen at most, however many rows
        texts = table[error].map(lambda e: MISSING if _missing(e) else f"{float(e):.{DECIMALS}f}")
        for text, rows in texts[texts != MISSING].groupby(texts).groups.items():
            style = style.format(f"{{:.{DECIMALS}f}} ± {text}", subset=pd.IndexSlice[list(rows), [column]],
                                 na_rep=MISSING)
    return style


def _missing(value) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))
