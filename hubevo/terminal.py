"""What the terminal shows: hubevo's own lines and bars; library bars and warnings only with `-v`.

The libraries read their switches from the environment when they are imported (and child
processes inherit it), so `quiet_libraries` sets the environment first and flips the switches
of any library already imported. lm-eval draws its request bars whatever the environment says;
the lm-eval fence (`hubevo.evaluation.lm_eval_fence`) asks `library_bars()` before it lets lm-eval draw them.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

QUIET_LOGGERS = ("lm_eval", "lm-eval", "transformers", "mergekit", "datasets", "httpx", "accelerate", "peft",
                 "trl", "torch")


QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",       # huggingface_hub, and transformers' bars follow it
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}


def quiet_libraries(*, verbose: bool = False) -> None:
    """Library progress bars, warnings and info lines off (kept on with `verbose`)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        return
    os.environ.update(QUIET_ENVIRONMENT)
    warnings.simplefilter("ignore")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    _switch_off_imported()


def _switch_off_imported() -> None:
    """Libraries imported before `quiet_libraries` read the environment already: flip their switches."""
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def library_bars() -> bool:
    """Whether libraries may draw progress bars (Hugging Face's switch, which `quiet_libraries` turns off)."""
    from huggingface_hub.utils import are_progress_bars_disabled

    return not are_progress_bars_disabled()


def where(path: Path) -> str:
    """`path` as a person would type it from here: relative under the working folder, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)
