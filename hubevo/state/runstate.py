"""Run state: the single source of truth for `--resume`, written atomically after every step.

Every random draw of the loop comes from a generator seeded by (run seed, generation,
stage), so a resumed run re-derives exactly what the killed one would have done;
the state only has to remember what was already paid for: evaluations, survivors
written to disk, and the population of the current generation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from hubevo.breed.genome import Individual
from hubevo.config import EstimatorConfig, RunConfig
from hubevo.errors import ConfigError, StateFileError
from hubevo.evaluation.records import Evaluation
from hubevo.files import MISSING, file_problem, read_text
from hubevo.fsio import atomic_write_text
from hubevo.selection import ranking

log = logging.getLogger("hubevo")


STATE_FILE = "state.json"


STATUS_FILE = "status.json"


class RunState(BaseModel):
    config_hash: str
    generation: int = 0
    population: list[str] = Field(default_factory=list)
    individuals: dict[str, Individual] = Field(default_factory=dict)
    evaluations: dict[str, Evaluation] = Field(default_factory=dict)
    heldout: dict[str, dict[str, float]] = Field(default_factory=dict)
    survivors: dict[int, list[str]] = Field(default_factory=dict)
    saved: dict[str, str] = Field(default_factory=dict)
    recipes: dict[str, dict] = Field(
        default_factory=dict, description="Merged children: the portable mergekit recipe, rendered once.")
    baselines: dict[str, str] = Field(
        default_factory=dict, description="Standard recipes scored in generation 0: id -> recipe name.")
    validation: dict[str, Evaluation] = Field(
        default_factory=dict, description="Finalists scored on the validation examples; the champion is picked there.")
    rescored: list[Evaluation] = Field(
        default_factory=list, description="Earlier scores of elites scored again on a new generation's sample.")
    training: dict[str, dict] = Field(default_factory=dict, description="Fine-tuned children: training metrics.")
    told: int = Field(-1, description="Last generation whose results the strategy has been told.")
    members: dict[str, dict] = Field(default_factory=dict, description="Every seed: id -> label, source, path, revision.")
    initial: list[str] = Field(default_factory=list, description="Ids of the initial members, in config order.")
    base: str | None = Field(None, description="Id of the base model, if any.")
    pending: list[str] = Field(default_factory=list, description="Immigrants waiting to join the next generation.")
    strategy_state: dict = Field(default_factory=dict)
    elapsed_s: float = Field(0.0, description="The run's one clock (hubevo.state.clock): seconds its processes spent "
                                               "on it, over every start and resume.")
    generation_ends: dict[int, float] = Field(
        default_factory=dict, description="elapsed_s when each generation ended (its survivors chosen and written).")
    finished: bool = False
    stop_reason: str | None = None
    _decisions: dict = PrivateAttr(default_factory=dict)

    @property
    def generations_done(self) -> int | None:
        """The last generation whose survivors are chosen (0: the members scored); None before that."""
        return max(self.survivors, default=None)

    def fitness_of(self, ids) -> dict[str, float | None]:
        return {i: self.evaluations[i].fitness for i in ids if i in self.evaluations}

    def champion(self, *, upto: int | None = None) -> str | None:
        """The run's champion by the one rule of `hubevo.selection.ranking` (after generation `upto`, if given)."""
        return self.decision(upto=upto).champion

    def decision(self, *, upto: int | None = None, rule: str = ranking.DEFAULT_RULE) -> ranking.Decision:
        """The champion and the comparison that decided it, which every report prints (decided once per
        state of the scores: every view of one state asks again)."""
        key = (upto, rule, tuple(self.initial), tuple(self.baselines),
               *((e.id, e.status, e.fitness, e.generation, e.sample) for e in self.evaluations.values()),
               None, *((e.id, e.status, e.fitness, e.generation) for e in self.validation.values()))
        if key not in self._decisions:
            if len(self._decisions) >= 16:  # older states of the scores
                self._decisions.clear()
            self._decisions[key] = ranking.decide(self.evaluations, upto=upto, validation=self.validation,
                                                  incumbents={*self.initial, *self.baselines}, rule=rule)
        return self._decisions[key]


# fitness fields added after runs began: at these defaults they leave an older run's hash as it was
LATER_DEFAULTS = {"dtype": "auto", "hflm_kwargs": {}, "max_batch_size": 64,
                  "estimator": EstimatorConfig().model_dump(mode="json")}


def config_hash(cfg: RunConfig) -> str:
    """Hash of everything that shapes the search; budget, publishing, execution and tracking may change on resume, and
    output.dir too: a run folder moved or renamed holds the same run."""
    return _hash(_search_part(cfg.model_dump(mode="json")))


def _hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def same_config(state: RunState, cfg: RunConfig, *, run_dir: Path) -> bool:
    """Whether `state` was written under `cfg`. A state written while output.dir was part of the hash matches with
    output.dir as the folder's config.yaml names it (where the run was made) or as `run_dir`."""
    if state.config_hash == config_hash(cfg):
        return True
    data = cfg.model_dump(mode="json")
    dirs = {str(run_dir), *filter(None, [_saved_output_dir(run_dir)])}
    return any(state.config_hash == _hash({**_search_part(data), "output": {**data["output"], "dir": d}}) for d in dirs)


def _saved_output_dir(run_dir: Path) -> str | None:
    """output.dir as the config.yaml hubevo wrote into `run_dir` names it: where the run was last started."""
    try:
        saved = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, ValueError, RecursionError, yaml.YAMLError):
        return None
    out = saved.get("output") if isinstance(saved, dict) else None
    return out.get("dir") if isinstance(out, dict) and isinstance(out.get("dir"), str) else None


def moved(state: RunState, *, run_dir: Path) -> None:
    """Where the run folder was moved or renamed since the run last started, point the state's paths into it (the
    survivor folders, members kept in it) and drop the stored recipes (their member paths are relative to the folder:
    `hubevo.run.run.start` renders them again)."""
    old = _saved_output_dir(run_dir)
    if old is None or Path(old) == Path(run_dir):
        return
    log.info("the run folder moved from %s to %s; resuming it there", old, run_dir)
    for cid, path in state.saved.items():
        state.saved[cid] = _rebased(path, old=Path(old), new=Path(run_dir))
    for member in state.members.values():
        member["path"] = _rebased(member["path"], old=Path(old), new=Path(run_dir))
    state.recipes.clear()


def _rebased(path: str, *, old: Path, new: Path) -> str:
    return str(new / Path(path).relative_to(old)) if Path(path).is_relative_to(old) else path


def rng_for(seed: int, generation: int, stage: str) -> np.random.Generator:
    return np.random.default_rng([seed, generation, int(hashlib.sha256(stage.encode()).hexdigest()[:8], 16)])


class RunStatus(BaseModel, frozen=True):
    """Where a run stands, in a few fields: written next to the state so a watcher need not parse it."""

    generation: int
    generations_done: int | None
    candidate: int = Field(description="Candidates of the current generation evaluated so far.")
    candidates: int = Field(description="Candidates in the current generation.")
    evaluated: int
    elapsed_s: float
    finished: bool
    stop_reason: str | None
    champion: str | None
    champion_fitness: float | None
    best_fitness: float | None = Field(None, description="The best fitness any candidate scored (the champion is "
                                                          "decided in the finals, not by fitness alone).")
    generation_ends: dict[int, float] = Field(default_factory=dict, description="The state's generation_ends.")


def run_status(state: RunState) -> RunStatus:
    champion = state.champion()
    return RunStatus(
        generation=state.generation, generations_done=state.generations_done,
        candidate=sum(1 for i in state.population if i in state.evaluations), candidates=len(state.population),
        evaluated=len(state.evaluations), elapsed_s=state.elapsed_s, finished=state.finished,
        stop_reason=state.stop_reason, champion=champion, generation_ends=state.generation_ends,
        champion_fitness=state.evaluations[champion].fitness if champion is not None else None,
        best_fitness=max((e.fitness for e in state.evaluations.values() if e.status == "ok" and e.fitness is not None),
                         default=None))


def save_state(state: RunState, run_dir: Path) -> None:
    """The state, then its `RunStatus` (a status older than the state is stale: read the state instead)."""
    atomic_write_text(run_dir / STATE_FILE, state.model_dump_json(indent=1))
    atomic_write_text(run_dir / STATUS_FILE, run_status(state).model_dump_json())


def load_status(run_dir: Path) -> RunStatus | None:
    """The status saved with the state; None when missing, unreadable or older than the state."""
    path, state = Path(run_dir) / STATUS_FILE, Path(run_dir) / STATE_FILE
    try:
        if path.stat().st_mtime_ns < state.stat().st_mtime_ns:
            return None
        return RunStatus.model_validate_json(path.read_text())
    except (OSError, ValidationError, UnicodeDecodeError):
        return None


STATE_FIX = ("hubevo writes it atomically, so it was changed from outside. Restore it from a backup, or move it "
             "aside to start the run afresh in this folder (events.jsonl and the survivor folders are kept), or "
             "choose another output.dir")


def load_state(run_dir: Path) -> RunState | None:
    """The run's saved state; None when there is none. StateFileError (one line) when it is there but cannot be
    read: a folder, unreadable, not UTF-8, or not a run state."""
    path = Path(run_dir) / STATE_FILE
    if file_problem(path) == MISSING:
        return None
    text = read_text(path, what="run state", field="output.dir", fix=STATE_FIX, error=StateFileError)
    try:
        return RunState.model_validate_json(text)
    except ValidationError as err:
        raise StateFileError(f"run state {str(path)!r} is corrupted ({_first_problem(err)}); {STATE_FIX}") from None


def _first_problem(err: Exception) -> str:
    if isinstance(err, ValidationError):
        item = err.errors()[0]
        return f"{'.'.join(map(str, item['loc'])) or 'file'}: {item['msg']}"
    return str(err)[:200]


def open_state(cfg: RunConfig, *, resume: bool) -> RunState | None:
    """The saved state to resume from, or None for a fresh run; refuses to mix two runs."""
    run_dir = cfg.output.dir
    state = load_state(run_dir)
    if state is None:
        if resume and _events(run_dir):
            raise ConfigError(
                f"output.dir {str(run_dir)!r} holds a run (its events.jsonl) but no {STATE_FILE}: the state was "
                f"deleted or moved, so --resume has nothing to resume from; restore {STATE_FILE}, or drop --resume to "
                "start the run afresh in this folder (its results and survivors are replaced), or choose another "
                "output.dir")
        return None
    if not state.evaluations:  # it failed before paying for anything: nothing to keep, nothing to refuse
        log.info("output.dir %s holds a run that never evaluated a candidate; starting afresh", run_dir)
        return None
    if not resume:
        raise ConfigError(
            f"output.dir {str(run_dir)!r} already holds a run; pass --resume to continue it or choose another output.dir"
        )
    if not same_config(state, cfg, run_dir=run_dir):
        changed = changed_fields(run_dir, cfg)
        raise ConfigError(
            f"output.dir {str(run_dir)!r} holds a run made with a different config"
            f"{f' (changed: {changed})' if changed else ''}; resume it with the same config (only budget "
            "generations, max_evaluations and wall_time_s, publish, execution and tracking may change) or choose "
            "another output.dir"
        )
    moved(state, run_dir=run_dir)
    state.config_hash = config_hash(cfg)  # a state hashed with its output.dir is saved without it
    return state


def _events(run_dir: Path) -> bool:
    """Whether `run_dir` holds the events of a run that evaluated candidates (written only after an evaluation)."""
    try:
        return (Path(run_dir) / "events.jsonl").stat().st_size > 0
    except OSError:
        return False


def changed_fields(run_dir: Path, cfg: RunConfig) -> str:
    """'a.b: old -> new, ...' between the run's saved config.yaml and `cfg`, over the fields that shape the search."""
    saved_path = Path(run_dir) / "config.yaml"
    try:
        saved = yaml.safe_load(saved_path.read_text())
    except (OSError, ValueError, RecursionError, yaml.YAMLError):  # a ValueError: not UTF-8, or a bad date
        return ""
    if not isinstance(saved, dict):
        return ""
    old, new = _flat(_search_part(saved)), _flat(_search_part(cfg.model_dump(mode="json")))
    diffs = [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}" for k in sorted(old.keys() | new.keys())
             if old.get(k) != new.get(k)]
    return ", ".join(diffs[:8]) + (f" and {len(diffs) - 8} more" if len(diffs) > 8 else "")


def _search_part(data: dict) -> dict:
    part = {k: v for k, v in data.items() if k not in ("publish", "execution", "tracking")}
    if isinstance(part.get("output"), dict):  # where the run folder is says nothing of the run
        part["output"] = {k: v for k, v in part["output"].items() if k != "dir"}
    part["budget"] = {k: v for k, v in (part.get("budget") or {}).items()
                      if k not in ("generations", "max_evaluations", "wall_time_s")}
    finetune = (part.get("mutation") or {}).get("finetune") if isinstance(part.get("mutation"), dict) else None
    if isinstance(finetune, dict) and finetune.get("nll_weight") == 0:  # plain DPO, as before the field
        part["mutation"] = {**part["mutation"], "finetune": {k: v for k, v in finetune.items() if k != "nll_weight"}}
    if isinstance(part.get("fitness"), dict):
        part["fitness"] = {k: v for k, v in part["fitness"].items()
                           if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
    return part


def _flat(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix: data}
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
