"""The demo zoo's preference dataset, for DPO mutations: the correct answer against a near miss.

Rows are `{"prompt", "chosen", "rejected"}` drawn from the TRAIN split of each skill
(`hubevo.demo.data.skill_splits`), never from the fitness or held-out splits, so a mutation
cannot train on what it is judged on. `chosen` is the answer; `rejected` is a plausible
wrong answer of the kind a half-trained member produces (`hubevo.demo.data.near_misses`):
the input left unsorted, two neighbouring characters swapped, one character replaced, or the
last character dropped.

The zoo trained on `<s>` + prompt + answer + `</s>`. Rows carry no EOS: trl appends the
tokenizer's EOS (`</s>`) to `chosen` and `rejected` of plain-text preference data (and to
`completion` for sft), which reproduces that format exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hubevo.demo.data import SKILLS, near_misses, skill_splits

Pair = dict[str, str]


def wrong_answer(example: dict[str, str], *, rng: np.random.Generator) -> str:
    """A plausible wrong answer to one demo example (never the correct one)."""
    options = near_misses(example, rng=rng)
    return options[int(rng.integers(len(options)))]


def preference_pairs(*, seed: int = 0, n: int = 2000) -> list[Pair]:
    """`n` seeded pairs from the train splits, alternating between skills so any prefix is mixed."""
    rng = np.random.default_rng([seed, 7])
    per_skill = [(skill, skill_splits(skill)["train"]) for skill in SKILLS]
    pairs = []
    for index in range(n):
        skill, train = per_skill[index % len(per_skill)]
        example = train[int(rng.integers(len(train)))]
        pairs.append({"prompt": example["prompt"], "chosen": example["answer"],
                      "rejected": wrong_answer(example, rng=rng)})
    return pairs


def write_preferences(path: Path, *, seed: int = 0, n: int = 2000) -> Path:
    """Write `preference_pairs(seed=seed, n=n)` as JSONL to `path` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(pair) + "\n" for pair in preference_pairs(seed=seed, n=n)))
    return path
