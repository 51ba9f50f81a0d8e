"""`python app.py demo`: the embedded default run on the tiny demo zoo (CPU, no Hub, no network).

Builds (or reuses) the zoo, evolves its specialists for a few generations and
prints the leaderboard and how the champion compares with every specialist on the
held-out tasks. Its run folder (`--out`) is replaced on every demo run, so it carries
`DEMO_MARKER` beside hubevo's run marker: the demo replaces only a folder a demo made.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import yaml

from hubevo.config import RunConfig, parse_config
from hubevo.errors import NotARunFolderError
from hubevo.fsio import LOCK_FILE, RUN_MARKER, WRITTEN_CONFIG, atomic_write_text, is_run_folder
from hubevo.publish.decision import baseline_bests, best_in, lead_text, standard_recipes
from hubevo.publish.report import browse_lines, champion_line, clock_line, reason_line
from hubevo.publish.tables import leaderboard, results_frame
from hubevo.state.runstate import RunState
from hubevo.terminal import where

log = logging.getLogger("hubevo")

COMBINED = "demo_combined_heldout"
DEMO_MARKER = ".hubevo-demo"  # in the run folder a demo made, beside RUN_MARKER: the one run folder a demo replaces


def check_demo_folder(out_dir: Path) -> None:
    """NotARunFolderError unless the demo may replace `out_dir`: new, or a run folder a demo made (`DEMO_MARKER`, or
    `earlier_demo`), or one that holds nothing; a folder of anything else is refused by `reset_run_folder`."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotARunFolderError(f"--out {str(out_dir)!r} is a file, not a folder; name another --out (a new folder, "
                                 "or the folder of an earlier demo)")
    if not is_run_folder(out_dir) or (out_dir / DEMO_MARKER).is_file() or earlier_demo(out_dir):
        return
    if set(os.listdir(out_dir)) <= {RUN_MARKER, LOCK_FILE}:  # a run folder emptied before its run began
        return
    name = _config(out_dir).get("name")
    raise NotARunFolderError(f"--out {str(out_dir)!r} holds {f'the run {name!r}' if name else 'a hubevo run'}, which "
                             f"the demo did not make (no {DEMO_MARKER} there); the demo replaces its folder whole, so "
                             "it never takes another run's: name another --out (e.g. runs/demo)")


def earlier_demo(folder: Path) -> bool:
    """A demo's run folder from before `DEMO_MARKER`: its config is named "demo" and every member is a model of a zoo
    the demo built in its cache (a folder named as `hubevo.demo.zoo` names its builds, e.g. `hard-seed-0-<hash>`)."""
    from hubevo.demo.zoo import ZOO_RECIPES

    data = _config(folder)
    population = data.get("population") if isinstance(data.get("population"), dict) else {}
    members = [m for m in [*(population.get("members") or []), population.get("base_model")] if m is not None]
    paths = [m.get("path") for m in members if isinstance(m, dict)]
    built = re.compile(rf"^({'|'.join(map(re.escape, ZOO_RECIPES))})-seed-\d+-[0-9a-f]+$")
    return (data.get("name") == "demo" and len(paths) == len(members)
            and all(isinstance(p, str) and built.match(Path(p).parent.name) for p in paths))


def _config(folder: Path) -> dict:
    """The config hubevo wrote into run folder `folder`; {} when it cannot be read."""
    try:
        data = yaml.safe_load((folder / WRITTEN_CONFIG).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def dpo_mutation(zoo) -> dict:
    """The demo's fine-tuning mutation: DPO with an NLL term on the chosen answer (RPO, the default), on shipped
    pairs."""
    from hubevo.demo.preferences import write_preferences

    prefs = zoo.root / "preferences.jsonl"
    if not prefs.is_file():
        write_preferences(prefs)
    return {
        "probability": 0.8, "operators": ["perturb", "dpo"], "strength": 0.15,
        # steps reach the merge + fine-tune baseline's 100, over fresh rows (800 = 100 steps x batch 8)
        "finetune": {"datasets": [{"path": str(prefs)}], "samples": 800, "steps": [10, 100],
                     "baseline_steps": [25, 100], "learning_rate": [3e-4, 1.2e-3], "lora_rank": [8, 16]},
    }


def demo_config(zoo, *, out_dir: Path, generations: int = 4, population_size: int = 6, seed: int = 0,
                dpo: bool = False, limit: int | None = 64) -> RunConfig:
    """The demo's run over `zoo`; `limit` fitness examples per task (None: all, as `fitness.limit`'s default).

    The finals score the zoo's validation tasks, as many examples as held-out has: a bred candidate's
    lead over a standard recipe of a few points is then beyond noise, where a quarter carved from the
    fitness tasks (75 examples per task) leaves it within.
    """
    data = {
        "name": "demo",
        "population": {
            "members": [{"path": str(p), "name": name} for name, p in zoo.specialists.items()],
            "base_model": {"path": str(zoo.base), "name": "base"},
        },
        "fitness": {
            "tasks": list(zoo.fitness_tasks),
            "heldout": list(zoo.heldout_tasks),
            "validation": list(zoo.validation_tasks),
            "include_path": [str(zoo.tasks_dir)],
            "limit": limit,
            "seed": seed,
        },
        "selection": {"method": "roulette", "keep_top_k": 2, "random_pick_prob": 0.1},
        "crossover": {
            "methods": ["linear", "slerp", "nuslerp", "ties", "dare_ties", "dare_linear",
                        "task_arithmetic", "breadcrumbs", "della", "model_stock"],
            "ranges": {"weight": [0.3, 1.2], "density": [0.3, 1.0], "lambda": [0.8, 1.6]},
        },
        "mutation": dpo_mutation(zoo) if dpo else {"probability": 0.8, "strength": 0.15},
        # a budget of generations, so the demo's result does not depend on how busy the machine is
        "budget": {"generations": generations, "population_size": population_size, "wall_time_s": None},
        "output": {"dir": str(out_dir)},
        "seed": seed,
    }
    return parse_config(data, root=out_dir.parent, source="(demo)")


def comparison(state: RunState) -> str:
    """Held-out scores of the champion against every initial member, the best standard recipe and (with --dpo) the
    best merge + fine-tune baseline."""
    frame = results_frame(state)
    champion, bests = state.champion(), baseline_bests(state)
    rows = frame[(frame["kind"] == "seed") | frame["id"].isin([champion, *bests.values()])].copy()
    role = {**{i: r for r, i in bests.items()}, champion: "champion"}
    rows["role"] = rows["id"].map(lambda i: role.get(i, "initial member"))
    cols = ["role", "model", "method", "fitness"] + sorted(c for c in frame.columns if c.startswith("heldout/"))
    return rows[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def champion_beats_members(state: RunState, task: str = COMBINED) -> bool:
    champion = state.champion()
    seeds = [i for i, ind in state.individuals.items() if ind.kind == "seed" and i in state.heldout]
    best_seed = max(state.heldout[i].get(task, 0.0) for i in seeds)
    return state.heldout.get(champion, {}).get(task, -1.0) > best_seed


def against_best_recipe(state: RunState) -> str:
    """The champion against the best standard recipe: the lead and its error, as the champion rule saw it."""
    champion, best_std = state.champion(), best_in(state, standard_recipes(state))
    if best_std is None:
        return "no standard recipe was scored"
    if champion == best_std:
        return f"the champion is the standard recipe {state.individuals[champion].name}: no bred finalist's " \
            "estimated lead over it was above 0"
    return f"the champion leads the best standard recipe {state.individuals[best_std].name} by " + \
        lead_text(state, champion, best_std)


def run_demo(*, out_dir: Path = Path("runs/demo"), cache_dir: Path | None = None, progress: bool = True,
             generations: int = 4, dpo: bool = False, zoo_recipe: str = "hard") -> RunState:
    from hubevo.demo.zoo import build_zoo, default_cache_dir
    from hubevo.run.loop import evolve, score_heldout

    print(f"hubevo demo: evolving the tiny {zoo_recipe} demo zoo's specialists for {generations} generations on CPU "
          f"(zoo cached in {where(cache_dir or default_cache_dir())}; built on first use)", flush=True)
    from hubevo.run.lock import reset_run_folder

    out_dir = out_dir.resolve()
    check_demo_folder(out_dir)  # a run folder the demo did not make is never replaced
    reset_run_folder(out_dir, field="--out")  # under its run lock: never a folder in use, nor one of the user's
    atomic_write_text(out_dir / DEMO_MARKER, "a hubevo demo made this run folder; the next demo with this --out "
                                             "replaces it whole\n")
    zoo = build_zoo(cache_dir, progress=progress, recipe=zoo_recipe)  # after the check: a refusal costs nothing
    cfg = demo_config(zoo, out_dir=out_dir, generations=generations, dpo=dpo, limit=None)  # fitness.limit's default
    print(f"members: {', '.join(zoo.specialists)} (base: base); run folder: {where(out_dir)}", flush=True)
    state = evolve(cfg, progress=progress)
    state = score_heldout(cfg, list(dict.fromkeys([*state.initial, *state.baselines])))  # for the comparison
    print(f"\nleaderboard ({state.stop_reason}):\n")
    print(leaderboard(state, top=15))
    print("\nchampion versus the initial members on held-out tasks:\n")
    print(comparison(state))
    verdict = "beats" if champion_beats_members(state) else "does NOT beat"
    print(f"\nthe champion {verdict} every initial member on {COMBINED}; {against_best_recipe(state)}")
    print("", champion_line(state), reason_line(state), clock_line(state), *browse_lines(out_dir), sep="\n")
    return state
