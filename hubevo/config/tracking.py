"""The run file's `tracking` section: which experiment trackers follow a run while it runs (none by default).

`tracking: [trackio]` is short for `tracking: {to: [trackio]}`. Each tracker gets one row per generation
(the loop's numbers) and the fine-tunes' training curves (trl's `report_to`); the run's own folder keeps
everything either way. Which package each tracker needs is checked before the run starts
(`hubevo.run.tracking`), not here: parsing never imports a tracker.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from hubevo.config.frozen import Frozen
from hubevo.registry import unknown_name

# tracker -> the package it needs (pip name = import name for these three)
TRACKER_PACKAGES = {"trackio": "trackio", "wandb": "wandb", "tensorboard": "tensorboard"}


class TrackingConfig(Frozen):
    """Experiment trackers: trackio (local-first, Hugging Face's), wandb, tensorboard."""

    to: list[str] = Field(
        default_factory=list,
        description="Trackers, any of trackio (stores locally in $TRACKIO_DIR, default ~/.cache/huggingface/trackio; "
                    "`trackio show` opens it), wandb (offline when HF_HUB_OFFLINE or WANDB_MODE say so) and "
                    "tensorboard (event files under output.dir/tensorboard); [] (the default): none.")
    project: str = Field("hubevo", pattern=r"^[\w.-]+$",
                         description="The trackers' project; the run is named after the run's `name`.")
    space_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$",
                                 description="trackio only: also sync to this Hugging Face Space (skipped with "
                                             "HF_HUB_OFFLINE=1); default: local only.")

    @model_validator(mode="before")
    @classmethod
    def _list_is_short_for_to(cls, data):
        return {"to": data} if isinstance(data, (list, str)) else data

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, names):
        return [names] if isinstance(names, str) else names

    @field_validator("to")
    @classmethod
    def _known_trackers(cls, names):
        unknown = [unknown_name("tracker", n, TRACKER_PACKAGES) for n in names if n not in TRACKER_PACKAGES]
        if unknown:
            raise ValueError("; ".join(unknown))
        return list(dict.fromkeys(names))
