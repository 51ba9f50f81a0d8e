"""Deterministic data for the demo zoo: two skills and the base model's general mixture.

Skill `digits`: sort a string of 4-7 digits, `"5213#"` -> `"1235"`.
Skill `letters`: sort a string of 4-6 letters, `"dbca>"` -> `"abcd"`.
Skill `reverse`: reverse a string of 4-6 digits, `"5213#r"` -> `"3125"`.
Skill `shift`: add one to every digit of 4-6 digits, `"5219#n"` -> `"6320"`.
The `trio` zoo's three specialists (`digits`, `reverse`, `shift`) read the same strings and answer
them in three incompatible ways, so a merge of all three interferes.
General mixture (`copy_digits`, `copy_letters`): copy a string of 3-6 digits or letters,
`"dbca|"` -> `"dbca"`; it teaches the base the characters and the prompt/answer format.

Each skill's sampled problems are split once, by a fixed seed, into three disjoint splits:
`fitness` (what evolution selects on), `heldout` (what it is judged on) and `train` (the rest).
A fourth, `validation` (the finals that pick the champion), is as large as `heldout` and drawn
afresh, outside all three: the training pool, and so the trained zoo, stay as they were.
The eval splits are shipped as JSONL in `hubevo/demo/tasks/`; a test checks they equal what
this module generates.
"""

from __future__ import annotations

import functools
import json
import string
from pathlib import Path

import numpy as np

Example = dict[str, str]  # {"prompt": ..., "answer": ...}

SKILLS = ("digits", "letters")
TRIO_SKILLS = ("digits", "reverse", "shift")
ALL_SKILLS = tuple(dict.fromkeys(SKILLS + TRIO_SKILLS))
GENERAL = ("copy_digits", "copy_letters")
EVAL_SPLITS = ("fitness", "heldout", "validation")
EVAL_SIZE = 300  # examples per skill in each of `fitness`, `heldout` and `validation`
POOL_SIZE = 12_000  # distinct problems sampled per skill; `train` gets what eval leaves
GENERAL_SIZE = 5_000
DATA_SEED = 1234  # fixed: the splits are part of the task definition, not of a zoo's seed

# name -> (alphabet, string lengths, separator, answer function)
_SPECS = {
    "digits": (string.digits, (4, 5, 6, 7), "#", lambda word: "".join(sorted(word))),
    "letters": (string.ascii_lowercase, (4, 5, 6), ">", lambda word: "".join(sorted(word))),
    "copy_digits": (string.digits, (3, 4, 5, 6), "|", lambda word: word),
    "copy_letters": (string.ascii_lowercase, (3, 4, 5, 6), "|", lambda word: word),
    "reverse": (string.digits, (4, 5, 6), "#r", lambda word: word[::-1]),
    "shift": (string.digits, (4, 5, 6), "#n", lambda word: "".join(str((int(c) + 1) % 10) for c in word)),
}
MAX_ANSWER_LENGTH = max(max(lengths) for _, lengths, _, _ in _SPECS.values())


@functools.cache
def _sample(name: str, count: int, *, stream: int = 0, exclude: frozenset[str] = frozenset()) -> tuple[Example, ...]:
    """`count` distinct problems of task `name`, in draw order; `stream` > 0 draws another sequence,
    without any problem whose prompt is in `exclude`."""
    alphabet, lengths, separator, answer = _SPECS[name]
    seed = [DATA_SEED, list(_SPECS).index(name)] + ([stream] if stream else [])
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}  # insertion-ordered set: keeps the draw order deterministic
    while len(words) < count:
        sizes = rng.choice(lengths, size=count)
        letters = rng.choice(list(alphabet), size=(count, max(lengths)))
        for size, row in zip(sizes, letters, strict=True):
            word = "".join(row[:size])
            if len(words) < count and word + separator not in exclude:
                words[word] = None
    return tuple({"prompt": word + separator, "answer": answer(word)} for word in words)


def skill_splits(skill: str) -> dict[str, list[Example]]:
    """Return `{"train", "fitness", "heldout", "validation"}` example lists for one skill (pairwise disjoint)."""
    if skill not in ALL_SKILLS:
        raise KeyError(f"unknown demo skill {skill!r}; known: {', '.join(ALL_SKILLS)}")
    pool = list(_sample(skill, POOL_SIZE))  # already in random order
    fresh = _sample(skill, EVAL_SIZE, stream=1, exclude=frozenset(example["prompt"] for example in pool))
    return {
        "fitness": pool[:EVAL_SIZE],
        "heldout": pool[EVAL_SIZE : 2 * EVAL_SIZE],
        "train": pool[2 * EVAL_SIZE :],
        "validation": list(fresh),
    }


def general_examples(name: str) -> list[Example]:
    """Examples of one general-mixture task (`copy_digits` or `copy_letters`)."""
    if name not in GENERAL:
        raise KeyError(f"unknown general task {name!r}; known: {', '.join(GENERAL)}")
    return list(_sample(name, GENERAL_SIZE))


def combined_heldout(skills: tuple[str, ...] = SKILLS) -> list[Example]:
    """The skills' held-out examples, interleaved so that any prefix (lm-eval `limit`) is mixed."""
    parts = [skill_splits(skill)["heldout"] for skill in skills]
    return [example for pair in zip(*parts, strict=True) for example in pair]


def near_misses(example: Example, *, rng: np.random.Generator) -> list[str]:
    """Plausible wrong answers to a skill example, of the kind a half-trained member produces.

    The input left unsorted, two neighbouring characters swapped, one character replaced, the
    last character dropped; never the correct answer (for DPO `rejected` completions).
    """
    answer, word = example["answer"], example["prompt"][:-1]
    alphabet = string.digits if answer.isdigit() else string.ascii_lowercase
    swap_at = int(rng.integers(len(answer) - 1))
    change_at = int(rng.integers(len(answer)))
    replacement = str(rng.choice([char for char in alphabet if char != answer[change_at]]))
    options = [
        word,
        answer[:swap_at] + answer[swap_at + 1] + answer[swap_at] + answer[swap_at + 2 :],
        answer[:change_at] + replacement + answer[change_at + 1 :],
        answer[:-1],
    ]
    return list(dict.fromkeys(option for option in options if option and option != answer))


def eval_files() -> dict[str, list[Example]]:
    """Every shipped JSONL file name mapped to its examples."""
    files = {
        f"{skill}_{split}.jsonl": skill_splits(skill)[split] for skill in ALL_SKILLS for split in EVAL_SPLITS
    }
    files["combined_heldout.jsonl"] = combined_heldout()
    files["trio_combined_heldout.jsonl"] = combined_heldout(TRIO_SKILLS)
    return files


def write_jsonl(path: Path, examples: list[Example]) -> None:
    path.write_text("".join(json.dumps(example) + "\n" for example in examples))


def read_jsonl(path: Path) -> list[Example]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    """Regenerate the shipped eval JSONL files: `python -m hubevo.demo.data`."""
    tasks_dir = Path(__file__).parent / "tasks"
    for name, examples in eval_files().items():
        write_jsonl(tasks_dir / name, examples)
        print(f"wrote {len(examples)} examples to {tasks_dir / name}")


if __name__ == "__main__":
    main()
