"""How fast the Space reads a large live run: first fill and status tick at 1k, 10k and 20k result rows.

A synthetic run (two tasks, 20 candidates a generation, 10 survivors each) is written as a live
`state.json`. First fill: a fresh catalog loads it, builds the leaderboard, the Progress tab's
table and the status row. Status tick: one more candidate is recorded (as a live run does after
each), then the Status tab's rows are rebuilt. Each is timed with the current code and with
the old code path (the O(n^2) Pareto mask, a survivor scan per row, a YAML dump per row on
every load, a resolver per row, a champion ranking per generation, a scan of the table per
generation in the Progress tab, a full reload of the state on every status tick, for the
scheduler's runs and for those only found on disk), and the ratio old / new is printed.

    python bench/space_load.py [--rows 1000 10000 20000] [--skip-old-above 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hubevo.breed.genome import MergeGenome, child_individual, seed_individual, to_merge_dict  # noqa: E402
from hubevo.evaluation.records import Evaluation  # noqa: E402
from hubevo.publish import tables  # noqa: E402
from hubevo.run import scheduler  # noqa: E402
from hubevo.selection import pareto  # noqa: E402
from hubevo.state.runstate import RunState, save_state  # noqa: E402
from space.controls.ui import status_frame  # noqa: E402
from space.data.catalog import Catalog  # noqa: E402
from space.data.status import local_status  # noqa: E402
from space.pages import progress  # noqa: E402
from space.pages.leaderboard import leaderboard  # noqa: E402

PER_GENERATION, SURVIVORS, TASKS = 20, 10, ("t1", "t2")
CONFIG = """name: {name}
population: {{members: [alice/s1, alice/s2]}}
fitness: {{tasks: [t1, t2]}}
crossover: {{methods: [linear]}}
budget: {{generations: {generations}, population_size: {size}}}
output: {{dir: {dir}}}
publish: {{namespace: alice, push: survivors}}
"""


def synthetic_state(rows: int, *, seed: int = 0) -> RunState:
    """A run with `rows` evaluated candidates: two seeds, then linear children of earlier survivors."""
    rng = np.random.default_rng(seed)
    seeds = [seed_individual(name=f"alice/s{k}", source=f"alice/s{k}") for k in (1, 2)]
    state = RunState(config_hash="bench", individuals={s.id: s for s in seeds}, initial=[s.id for s in seeds])
    refs = {s.id: s.source for s in seeds}
    for s in seeds:
        record(state, s.id, generation=0, rng=rng)
    survivors, generation = [s.id for s in seeds], 0
    while len(state.evaluations) < rows:
        generation += 1
        born = [breed(state, survivors, generation=generation, refs=refs, rng=rng)
                for _ in range(min(PER_GENERATION, rows - len(state.evaluations)))]
        ranked = sorted(set(survivors) | set(born), key=lambda i: -state.evaluations[i].fitness)
        survivors = ranked[:SURVIVORS]
        state.survivors[generation] = survivors
    state.generation, state.population, state.elapsed_s = generation, survivors, 3600.0
    return state


def breed(state: RunState, survivors: list[str], *, generation: int, refs: dict, rng) -> str:
    a, b = rng.choice(len(survivors), size=2, replace=len(survivors) < 2)
    weight = float(rng.uniform())
    genome = MergeGenome(method="linear", parents=(survivors[a], survivors[b]),
                         per_parent=({"weight": weight}, {"weight": 1 - weight}))
    child = child_individual(genome, generation=generation)
    state.individuals[child.id] = child
    refs[child.id] = f"alice/run-{child.id}"
    state.recipes[child.id] = to_merge_dict(genome, refs=refs)
    record(state, child.id, generation=generation, rng=rng)
    return child.id


def record(state: RunState, cid: str, *, generation: int, rng) -> None:
    scores = {t: float(rng.uniform()) for t in TASKS}
    state.evaluations[cid] = Evaluation(id=cid, generation=generation, status="ok", scores=scores,
                                        fitness=sum(scores.values()) / len(scores), examples=64, seconds=1.0)


def write_run(root: Path, rows: int) -> Path:
    state = synthetic_state(rows)
    run_dir = root / f"run{rows}"
    run_dir.mkdir(parents=True)
    config = CONFIG.format(name=run_dir.name, generations=state.generation + 5, size=PER_GENERATION, dir=run_dir)
    (run_dir / "config.yaml").write_text(config)
    (run_dir / scheduler.RUN_FILE).write_text(config)  # managed by the Space's scheduler too
    save_state(state, run_dir)
    return run_dir


def first_fill(runs_root: Path) -> tuple[float, Catalog, scheduler.Scheduler]:
    begin = time.perf_counter()
    catalog = Catalog(runs_root=runs_root, hub_datasets=())
    controller = scheduler.Scheduler(runs_root)  # not started: only its status() is read
    runs = catalog.runs()
    leaderboard(runs)
    progress.generation_stats(runs[0].results)
    status_frame(catalog, controller)
    return time.perf_counter() - begin, catalog, controller


def tick(catalog: Catalog, controller, run_dir: Path) -> tuple[float, float]:
    """One more candidate recorded (outside the timing), then the Status tab's rows; another, then the
    leaderboard rebuilt (a tab refreshed during a live run)."""
    add_candidate(catalog, run_dir)
    begin = time.perf_counter()
    status_frame(catalog, controller)  # the Status tab's timer: the scheduler's runs, then those found
    status_s = time.perf_counter() - begin
    add_candidate(catalog, run_dir)
    begin = time.perf_counter()
    leaderboard(catalog.runs())
    return status_s, time.perf_counter() - begin


def add_candidate(catalog: Catalog, run_dir: Path) -> None:
    state = catalog.runs()[0].state
    rng = np.random.default_rng(len(state.evaluations))
    refs = {i: f"alice/{i}" for i in state.individuals}
    breed(state, list(state.population), generation=state.generation, refs=refs, rng=rng)
    save_state(state, run_dir)
    time.sleep(0.01)  # a later mtime for the next write


def measure(rows: int) -> tuple[float, float, float]:
    tables._RECIPE_TEXTS.clear()  # each size starts cold
    tables._GENES_TEXTS.clear()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = write_run(Path(tmp), rows)
        fill, catalog, controller = first_fill(Path(tmp))
        return fill, *tick(catalog, controller, run_dir)


# ------------------------------------------------------------------ the old code path, for the ratio
def old_non_dominated(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    at_least = (points[None, :, :] >= points[:, None, :]).all(axis=2)
    better = (points[None, :, :] > points[:, None, :]).any(axis=2)
    return ~(at_least & better).any(axis=1)


@contextlib.contextmanager
def old_code():
    """The functions this bench's fixes replaced, swapped back in."""
    import yaml

    from hubevo.publish.resolver import Resolver
    from space.data import loading

    saved = (pareto.non_dominated, tables.recipe_text, tables.survivor_ids, loading.hub_repos,
             tables.champion_reigns, progress.reign_table, progress.generation_stats, loading.results_frame,
             Catalog.statuses, scheduler.run_status)

    def old_hub_repos(state, config, ids):
        cfg = loading.RunConfig.model_validate(config)
        return [Resolver.of(state, cfg).hub_repo(cid) for cid in ids]

    def old_survivor_ids(state):
        return _Scan(state.survivors)

    pareto.non_dominated = old_non_dominated
    tables.champion_reigns = old_champion_reigns
    progress.reign_table = lambda results: _ScanReigns(results)
    tables.recipe_text = lambda recipe: yaml.safe_dump(recipe, sort_keys=False)
    tables.survivor_ids = old_survivor_ids
    loading.hub_repos = old_hub_repos
    progress.generation_stats = old_generation_stats
    loading.results_frame = lambda state, recipes: tables.results_frame(state, recipes=True)
    Catalog.statuses = lambda catalog: [local_status(r) for r in catalog.runs()]
    scheduler.run_status = old_run_status
    try:
        yield
    finally:
        (pareto.non_dominated, tables.recipe_text, tables.survivor_ids, loading.hub_repos,
         tables.champion_reigns, progress.reign_table, progress.generation_stats, loading.results_frame,
         Catalog.statuses, scheduler.run_status) = saved


def old_run_status(folder: Path, *, running: bool = False) -> dict:
    """The scheduler's status row as it was: the whole state parsed (twice) and every event read, per tick."""
    from hubevo.state.events import read_events
    from hubevo.state.runstate import load_state

    cfg = scheduler.load_config(folder / scheduler.RUN_FILE)
    control, state = scheduler.read_control(folder), load_state(folder)
    evaluated = [e for e in read_events(folder) if e["event"] == "evaluated"]
    ids = {e.get("id") for e in evaluated if evaluated and e.get("generation") == evaluated[-1].get("generation")}
    per_eval = state.elapsed_s / max(len(state.evaluations), 1) if state else None
    left = max(cfg.budget.generations - (state.generation if state else 0), 0) * cfg.budget.population_size
    phase = control.get("state", "active")
    if phase == "active":
        again = load_state(folder)  # `next_target` read the state once more
        done = state.finished and again is not None and scheduler.budget_spent(cfg, state)
        phase = "running" if running or (state is not None and not done) else "finished" if done else "queued"
    best = state.evaluations[state.champion()].fitness if state and state.champion() else None
    return {"name": folder.name, "state": phase, "generation": state.generations_done, "candidate": len(ids),
            "candidates": evaluated[-1].get("total", 0) if evaluated else 0, "elapsed_s": state.elapsed_s,
            "eta_s": per_eval * left if per_eval else None, "best_fitness": best,
            "message": control.get("last_error") or scheduler.progress_message(cfg, state, phase=phase),
            "owner": control.get("owner")}


def old_generation_stats(results):
    """The Progress tab's table as it was: the frame filtered and the champion looked up per generation."""
    from space.data.loading import rounded

    rows, reigns = [], progress.reign_table(results)
    for generation in sorted(int(g) for g in results["evaluated_in"].dropna().unique()):
        now = results[results["evaluated_in"] == generation]
        ok = now[now["status"] == "ok"]
        best = progress.champion_after(results, generation, reigns=reigns)
        champion = results[results["id"] == best].iloc[0] if best is not None else None
        rows.append({
            "generation": generation, "candidates": len(now), "failed": int((now["status"] == "failed").sum()),
            "raced out": int((now["status"] == "raced_out").sum()),
            "best fitness": rounded(ok["fitness"].max()) if len(ok) else None,
            "mean fitness": rounded(ok["fitness"].mean()) if len(ok) else None,
            "champion": champion["model"] if champion is not None else None,
            "champion fitness": rounded(champion["fitness"]) if champion is not None else None,
            "champion held-out": rounded(champion["heldout"]) if champion is not None else None,
        })
    return progress.pd.DataFrame(rows, columns=progress.STATS_COLUMNS)


def old_champion_reigns(state: RunState) -> dict[str, list[int]]:
    reigns: dict[str, list[int]] = {}
    for generation in sorted(state.survivors):
        cid = state.champion(upto=generation)
        if cid is not None:
            reigns.setdefault(cid, []).append(generation)
    return reigns


class _ScanReigns(dict):
    """The old champion look-up of the Progress tab: a scan of every row's reign per generation."""

    def __init__(self, results):
        super().__init__()
        self.results = results

    def __contains__(self, generation) -> bool:
        self.found = self._find(generation)  # one scan per generation, as the old code made
        return self.found is not None

    def __getitem__(self, generation):
        return self.found

    def _find(self, generation):
        for cid, reign in zip(self.results["id"], self.results["champion_in"], strict=True):
            if reign is not None and not isinstance(reign, float) and generation in list(reign):
                return str(cid)
        return None


class _Scan:
    """`cid in survivors` the old way: a scan of every generation's list."""

    def __init__(self, survivors):
        self.survivors = survivors

    def __contains__(self, cid) -> bool:
        return any(cid in ids for ids in self.survivors.values())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000, 20000])
    parser.add_argument("--skip-old-above", type=int, default=20000, help="Rows above which the old path is not run.")
    args = parser.parse_args(argv)
    print("reload: the leaderboard rebuilt after the same change (a tab refreshed during a live run)")
    print(f"{'rows':>6} {'fill s':>8} {'old fill s':>10} {'ratio':>6} {'tick s':>8} {'old tick s':>10} {'ratio':>7}"
          f" {'reload s':>9} {'old reload s':>12} {'ratio':>6}")
    for rows in args.rows:
        new = measure(rows)
        if rows <= args.skip_old_above:
            with old_code():
                old = measure(rows)
        else:
            old = (float("nan"),) * 3
        cells = [f"{n:{w}.{3 if k == 1 else 2}f} {o:{v}.2f} {o / max(n, 1e-3):{6 if k != 1 else 7}.1f}"
                 for k, (n, o, w, v) in enumerate(zip(new, old, (8, 8, 9), (10, 10, 12)))]
        print(f"{rows:>6} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
