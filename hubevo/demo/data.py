"""Deterministic data for the demo zoo's two skills.

Skill `add`: two-digit addition, `"37+45="` -> `"82"` (10,000 distinct problems).
Skill `rev`: reverse a 3-5 letter string, `"abcd>"` -> `"dcba"`.

Each skill's problem space is split once, by a fixed seed, into three disjoint splits:
`fitness` (what evolution selects on), `heldout` (what it is judged on) and `train`
(everything else, for pre-training and fine-tuning). The eval splits are also shipped
as JSONL in `hubevo/demo/tasks/` and a test checks they equal what this module generates.
"""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import Callable
from pathlib import Path

import numpy as np

SKILLS = ("add", "rev")
EVAL_SPLITS = ("fitness", "heldout")
EVAL_SIZE = 300  # examples per skill in each of `fitness` and `heldout`
DATA_SEED = 1234  # fixed: the splits are part of the task definition, not of a zoo's seed
REV_ALPHABET = string.ascii_lowercase
REV_LENGTHS = (3, 4, 5)

Example = dict[str, str]  # {"prompt": ..., "answer": ...}


def _add_space() -> list[Example]:
    return [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(100) for b in range(100)]


def _rev_sample(rng: np.random.Generator, count: int) -> list[Example]:
    # 26**3 + 26**4 + 26**5 strings: sample distinct ones instead of enumerating.
    seen: set[str] = set()
    while len(seen) < count:
        length = int(rng.choice(REV_LENGTHS))
        seen.add("".join(rng.choice(list(REV_ALPHABET), size=length)))
    return [{"prompt": f"{word}>", "answer": word[::-1]} for word in sorted(seen)]


def _split(examples: list[Example], rng: np.random.Generator) -> dict[str, list[Example]]:
    order = rng.permutation(len(examples))
    shuffled = [examples[i] for i in order]
    fitness, heldout = shuffled[:EVAL_SIZE], shuffled[EVAL_SIZE : 2 * EVAL_SIZE]
    return {"fitness": fitness, "heldout": heldout, "train": shuffled[2 * EVAL_SIZE :]}


def skill_splits(skill: str) -> dict[str, list[Example]]:
    """Return `{"train", "fitness", "heldout"}` example lists for one skill (pairwise disjoint)."""
    builders: dict[str, Callable[[np.random.Generator], list[Example]]] = {
        "add": lambda rng: _add_space(),
        "rev": lambda rng: _rev_sample(rng, 12_000),
    }
    if skill not in builders:
        raise KeyError(f"unknown demo skill {skill!r}; known: {', '.join(SKILLS)}")
    rng = np.random.default_rng([DATA_SEED, SKILLS.index(skill)])
    return _split(builders[skill](rng), rng)


def combined_heldout() -> list[Example]:
    """Both skills' held-out examples, interleaved so that any prefix (lm-eval `limit`) is mixed."""
    parts = [skill_splits(skill)["heldout"] for skill in SKILLS]
    return [example for pair in zip(*parts, strict=True) for example in pair]


def eval_files() -> dict[str, list[Example]]:
    """Every shipped JSONL file name mapped to its examples."""
    files = {f"{skill}_{split}.jsonl": skill_splits(skill)[split] for skill in SKILLS for split in EVAL_SPLITS}
    files["combined_heldout.jsonl"] = combined_heldout()
    return files


def write_jsonl(path: Path, examples: list[Example]) -> None:
    path.write_text("".join(json.dumps(example) + "\n" for example in examples))


def _chain(*lists: list[Example]) -> list[Example]:
    return list(itertools.chain(*lists))
