"""The demo zoo's preference dataset, for DPO mutations: the correct answer against a near miss.

Rows are `{"prompt", "chosen", "rejected"}` drawn from the TRAIN split of each skill
(`hubevo.demo.data.skill_splits`), never from the fitness or held-out splits, so a mutation
cannot train on what it is judged on. `chosen` is the answer; `rejected` is a plausible
wrong answer of the kind a half-trained member produces: for `add`, off by one or ten, the
digits swapped, or the carry dropped; for `rev`, the word unreversed, two neighbouring
letters swapped, one letter changed or the last letter lost.

The zoo trained on `<s>` + prompt + answer + `</s>`. Rows carry no EOS: trl appends the
tokenizer's EOS (`</s>`) to `chosen` and `rejected` of plain-text preference data (and to
`completion` for sft), which reproduces that format exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hubevo.demo.data import REV_ALPHABET, SKILLS, skill_splits

Pair = dict[str, str]


def _wrong_sums(prompt: str, answer: str) -> list[str]:
    a, b = (int(x) for x in prompt.rstrip("=").split("+"))
    no_carry = int("".join(str((int(x) + int(y)) % 10) for x, y in zip(f"{a:02d}", f"{b:02d}")))
    swapped = int(answer[::-1]) if len(answer) > 1 else None
    options = [a + b + 1, a + b - 1, a + b + 10, a + b - 10, swapped, no_carry]
    return [str(v) for v in options if v is not None and v >= 0]


def _wrong_reversals(prompt: str, answer: str, *, rng: np.random.Generator) -> list[str]:
    word = prompt.rstrip(">")
    i = int(rng.integers(len(answer) - 1))
    j = int(rng.integers(len(answer)))
    letter = str(rng.choice([c for c in REV_ALPHABET if c != answer[j]]))
    return [word, answer[:i] + answer[i + 1] + answer[i] + answer[i + 2 :], answer[:j] + letter + answer[j + 1 :],
            answer[:-1]]


def wrong_answer(skill: str, example: dict[str, str], *, rng: np.random.Generator) -> str:
    """A plausible wrong answer to one demo example (never the correct one)."""
    makers: dict[str, Callable[[], list[str]]] = {
        "add": lambda: _wrong_sums(example["prompt"], example["answer"]),
        "rev": lambda: _wrong_reversals(example["prompt"], example["answer"], rng=rng),
    }
    options = sorted({o for o in makers[skill]() if o and o != example["answer"]})
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
                      "rejected": wrong_answer(skill, example, rng=rng)})
    return pairs


def write_preferences(path: Path, *, seed: int = 0, n: int = 2000) -> Path:
    """Write `preference_pairs(seed=seed, n=n)` as JSONL to `path` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(pair) + "\n" for pair in preference_pairs(seed=seed, n=n)))
    return path
