"""Experiment tracking, beside the loop: each generation's numbers sent to the trackers `tracking.to` names.

The run folder keeps every number whatever happens here (state, results table, events); a tracker is a
dashboard over them. Per generation (one row, step = the generation): the fitness of the candidates
scored in it (best, median, mean, min; how many ok, failed, raced out), the champion's fitness and
name, the evaluations so far and their rate; at the end the champion's held-out scores. The fine-tunes'
training curves go through trl's own `report_to` (`trainer_report`, carried by each candidate job).

`check_tracking` (preflight) names a tracker whose package is not installed, before the run starts;
`open_tracking` starts the others. A tracker that fails later logs one warning and is dropped: a dashboard
never stops a run. Nothing here reaches the network unless asked: trackio stores locally (a Space only
with `tracking.space_id`, and never with HF_HUB_OFFLINE=1), wandb runs offline when HF_HUB_OFFLINE or
WANDB_MODE say so, tensorboard writes event files under `output.dir/tensorboard`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import statistics
from dataclasses import dataclass, field
from typing import Protocol

from huggingface_hub import constants

from hubevo.config import TRACKER_PACKAGES, RunConfig
from hubevo.errors import ConfigError, describe_error
from hubevo.registry import Registry
from hubevo.state.runstate import RunState

log = logging.getLogger("hubevo")

Metrics = dict[str, float | int | str]
TRAINER_REPORTS = ("trackio", "tensorboard")  # trl's wandb callback would log into the loop's open wandb run


class Tracker(Protocol):
    """One experiment tracker: started once per process, a row of metrics per step, finished at the end."""

    name: str

    def start(self, *, cfg: RunConfig, resume: bool) -> None: ...

    def log(self, metrics: Metrics, *, step: int) -> None: ...

    def finish(self) -> None: ...


# the numbers -----------------------------------------------------------------------------------
def generation_metrics(state: RunState) -> Metrics:
    """The current generation's row: its candidates' fitness, the champion, the evaluations so far."""
    g = state.generation
    scored = [state.evaluations[i] for i in state.population
              if i in state.evaluations and state.evaluations[i].generation == g]
    fitness = sorted(e.fitness for e in scored if e.status == "ok" and e.fitness is not None)
    metrics: Metrics = {f"generation/{status}": sum(e.status == status for e in scored)
                        for status in ("ok", "failed", "raced_out")}
    if fitness:
        metrics.update({"generation/fitness_best": fitness[-1], "generation/fitness_median": statistics.median(fitness),
                        "generation/fitness_mean": statistics.fmean(fitness), "generation/fitness_min": fitness[0]})
    champion = state.champion()
    if champion is not None:
        metrics.update({"champion/fitness": state.evaluations[champion].fitness,
                        "champion/name": state.individuals[champion].name, "champion/id": champion})
        if champion in state.validation and state.validation[champion].fitness is not None:
            metrics["champion/validation"] = state.validation[champion].fitness
    done = len(state.evaluations)
    metrics.update({"run/evaluations": done, "run/elapsed_s": state.elapsed_s})
    if state.elapsed_s > 0:
        metrics["run/evaluations_per_s"] = done / state.elapsed_s
    return metrics


def final_metrics(state: RunState) -> Metrics:
    """The champion's held-out scores, per task and their mean; nothing without held-out tasks."""
    champion = state.champion()
    scores = state.heldout.get(champion, {}) if champion is not None else {}
    if not scores:
        return {}
    return {**{f"champion/heldout/{task}": value for task, value in scores.items()},
            "champion/heldout": statistics.fmean(scores.values())}


# the sink --------------------------------------------------------------------------------------
@dataclass
class Tracking:
    """The run's started trackers; each call reaches every tracker still alive."""

    trackers: list[Tracker] = field(default_factory=list)

    def generation(self, state: RunState) -> None:
        self.log(generation_metrics(state), step=state.generation)

    def close(self, state: RunState) -> None:
        """The champion's held-out scores, then every tracker finished."""
        final = final_metrics(state)
        if final:
            self.log(final, step=state.generation)
        for tracker in list(self.trackers):
            self._guarded(tracker, "finish", tracker.finish)
        self.trackers.clear()

    def log(self, metrics: Metrics, *, step: int) -> None:
        for tracker in list(self.trackers):
            self._guarded(tracker, "log", lambda t=tracker: t.log(metrics, step=step))

    def _guarded(self, tracker: Tracker, action: str, call) -> None:
        try:
            call()
        except Exception as err:  # noqa: BLE001  a tracker's own failure, whatever its library raises
            log.warning("tracking: %s could not %s (%s); the run goes on without it", tracker.name, action,
                        describe_error(err))
            if tracker in self.trackers:
                self.trackers.remove(tracker)


def open_tracking(cfg: RunConfig, *, resume: bool) -> Tracking:
    """The trackers of `tracking.to`, started; one that cannot start is left out with a warning."""
    sink = Tracking()
    for name in cfg.tracking.to:
        tracker = TRACKERS[name]()
        sink.trackers.append(tracker)
        sink._guarded(tracker, "start", lambda t=tracker: t.start(cfg=cfg, resume=resume))
    return sink


def check_tracking(cfg: RunConfig) -> None:
    """Every tracker `tracking.to` names has its package installed (one line naming what to install)."""
    missing = [TRACKER_PACKAGES[n] for n in cfg.tracking.to if importlib.util.find_spec(TRACKER_PACKAGES[n]) is None]
    if missing:
        raise ConfigError(f"tracking.to names {', '.join(missing)}, not installed; pip install {' '.join(missing)} "
                          "(trackio: pip install 'hubevo[tracking]'), or remove "
                          f"{'it' if len(missing) == 1 else 'them'} from tracking.to")


def trainer_report(cfg: RunConfig, *, child: str) -> dict | None:
    """trl's reporting arguments for the fine-tune of `child`: its curves in the run's trackio project and under
    `output.dir/tensorboard/finetune/<child>`; None (report_to "none") when no tracker takes them."""
    to = [name for name in cfg.tracking.to if name in TRAINER_REPORTS]
    if not to:
        return None
    report = {"report_to": to, "run_name": f"{cfg.name}-{child}", "project": cfg.tracking.project}
    if "trackio" in to and space_id(cfg):
        report["trackio_space_id"] = space_id(cfg)
    if "tensorboard" in to:
        report["logging_dir"] = str(cfg.output.dir / "tensorboard" / "finetune" / child)
    return report


def space_id(cfg: RunConfig) -> str | None:
    """trackio's Space, unless the Hub is off (HF_HUB_OFFLINE): then it logs locally only."""
    return None if constants.HF_HUB_OFFLINE else cfg.tracking.space_id


# the trackers ----------------------------------------------------------------------------------
class TrackioTracker:
    """Hugging Face's local-first tracker: one trackio run named after the run, in `tracking.project`."""

    name = "trackio"

    def start(self, *, cfg: RunConfig, resume: bool) -> None:
        if cfg.tracking.space_id and not space_id(cfg):
            log.warning("tracking: HF_HUB_OFFLINE is set, so trackio logs locally, not to Space %s",
                        cfg.tracking.space_id)
        self.args = {"project": cfg.tracking.project, "name": cfg.name, "space_id": space_id(cfg)}
        self._init(resume="allow" if resume else "never", config=cfg.model_dump(mode="json"))
        from trackio.utils import TRACKIO_DIR

        log.info("tracking: trackio project %s, run %s, in %s (trackio show --project %s)", cfg.tracking.project,
                 cfg.name, TRACKIO_DIR, cfg.tracking.project)

    def _init(self, *, resume: str, config: dict | None = None) -> None:
        import trackio

        with contextlib.redirect_stdout(io.StringIO()):  # trackio prints where it logs at every init
            self.run = trackio.init(**self.args, resume=resume, config=config, embed=False, auto_log_cpu=False,
                                    auto_log_gpu=False)

    def log(self, metrics: Metrics, *, step: int) -> None:
        from trackio import context_vars

        if context_vars.current_run.get() is not self.run:  # a fine-tune's trackio run (trl) finished ours
            self._init(resume="allow")
        self.run.log(metrics, step=step)

    def finish(self) -> None:
        from trackio import context_vars

        with contextlib.redirect_stdout(io.StringIO()):
            self.run.finish()
        if context_vars.current_run.get() is self.run:
            context_vars.current_run.set(None)


class WandbTracker:
    """Weights & Biases, when installed: one run named after the run; offline when HF_HUB_OFFLINE or WANDB_MODE
    say so. The fine-tunes' curves stay out of it (trl's callback would log them into this open run)."""

    name = "wandb"

    def start(self, *, cfg: RunConfig, resume: bool) -> None:
        wandb = importlib.import_module("wandb")  # optional: not a dependency of hubevo
        mode = "offline" if constants.HF_HUB_OFFLINE and not os.environ.get("WANDB_MODE") else None
        self.run = wandb.init(project=cfg.tracking.project, name=cfg.name, config=cfg.model_dump(mode="json"),
                              dir=str(cfg.output.dir), mode=mode, resume="allow" if resume else None)
        self.run.define_metric("generation")
        for prefix in ("generation/*", "champion/*", "run/*"):
            self.run.define_metric(prefix, step_metric="generation")

    def log(self, metrics: Metrics, *, step: int) -> None:
        self.run.log({**metrics, "generation": step})

    def finish(self) -> None:
        self.run.finish()


class TensorboardTracker:
    """TensorBoard event files under `output.dir/tensorboard/evolution` (strings as text, numbers as scalars)."""

    name = "tensorboard"

    def start(self, *, cfg: RunConfig, resume: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(cfg.output.dir / "tensorboard" / "evolution"))

    def log(self, metrics: Metrics, *, step: int) -> None:
        for key, value in metrics.items():
            if isinstance(value, str):
                self.writer.add_text(key, value, step)
            else:
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self) -> None:
        self.writer.close()


TRACKERS: Registry[type] = Registry("tracker", {"trackio": TrackioTracker, "wandb": WandbTracker,
                                                "tensorboard": TensorboardTracker})
