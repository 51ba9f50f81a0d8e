"""Stage 3's one ordering rule (`hubevo.selection.ranking.rank_key`) applied to the Space's results tables.

Every view that names a best model or sorts by fitness goes through here: the leaderboard
and the model pickers (`best_first`), the champion after each generation, the model the tabs
open on and a run's best fitness (`champion_id`). A table's `champion` column, written by
the core, names the champion; older tables lack it, and then the same rule picks it from the
rows. Only `ok` rows rank as candidates for champion; `failed` and `raced_out` rows never do.
"""

from __future__ import annotations

import pandas as pd

from hubevo.selection.ranking import rank_key


def order_key(fitness, generation, *, cid: str, ok: bool = True) -> tuple:
    """Sort key, ascending = best first: `ok` rows by `rank_key`, then the others with a fitness, then the rest."""
    if fitness is None or pd.isna(fitness):
        return (2, rank_key(0.0, _int_or_zero(generation), cid))
    return (0 if ok else 1, rank_key(fitness, _int_or_zero(generation), cid))


def best_first(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a results table, best first (see `order_key`)."""
    keys = [order_key(f, g, cid=i, ok=s == "ok")
            for s, f, g, i in zip(frame["status"], frame["fitness"], evaluated_in(frame), frame["id"], strict=True)]
    return frame.iloc[sorted(range(len(frame)), key=keys.__getitem__)]


def champion_id(frame: pd.DataFrame) -> str | None:
    """The champion among `frame`'s rows: the row the core marked, else the best `ok` row; None if none succeeded."""
    ok = frame[(frame["status"] == "ok") & frame["fitness"].notna()]
    if not len(ok):
        return None
    if "champion" in ok.columns:
        marked = [cid for cid, flag in zip(ok["id"], ok["champion"], strict=True) if _is_true(flag)]
        if marked:
            return str(marked[0])
    return str(best_first(ok).iloc[0]["id"])


def evaluated_in(frame: pd.DataFrame) -> list:
    """The generation each row was evaluated in (older tables only know when it was born)."""
    if "evaluated_in" not in frame.columns:
        return list(frame["generation"])
    return [g if e is None or pd.isna(e) else e for e, g in zip(frame["evaluated_in"], frame["generation"],
                                                                  strict=True)]


def _int_or_zero(value) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _is_true(flag) -> bool:
    return flag is not None and not pd.isna(flag) and bool(flag)
