"""Evaluation time with Jinja task templates: lm-eval's own `apply_template` (one compile per rendered
document) against `hubevo.evaluation.compile_templates_once` (one compile per template), in the same run.

The demo zoo's base model scores the demo's fitness tasks written with templates (`doc_to_text:
"{{prompt}}"`), as most lm-eval tasks are, `--repeats` times each way, alternating; printed: the
median seconds of each and their ratio, and whether the scores are equal.

    python bench/eval_templates.py [--limit 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from lm_eval import utils
from transformers import AutoModelForCausalLM, AutoTokenizer

from hubevo.config import FitnessConfig, TaskSpec
from hubevo.demo.zoo import build_zoo
from hubevo.evaluation import Evaluator, compile_templates_once


def templated_tasks(zoo, folder: Path) -> list[str]:
    """Copies of the zoo's fitness tasks whose prompt and answer are Jinja templates."""
    names = []
    for task in zoo.fitness_tasks:
        text = (zoo.tasks_dir / f"{task}.yaml").read_text().replace(f"task: {task}", f"task: {task}_jinja")
        text = text.replace("doc_to_text: prompt", 'doc_to_text: "{{prompt}}"')
        (folder / f"{task}_jinja.yaml").write_text(text.replace("doc_to_target: answer", 'doc_to_target: "{{answer}}"'))
        names.append(f"{task}_jinja")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    zoo = build_zoo(progress=False)
    folder = Path(tempfile.mkdtemp(prefix="hubevo-templates-"))
    tasks = [TaskSpec(name=n) for n in templated_tasks(zoo, folder)]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(zoo.base), AutoTokenizer.from_pretrained(zoo.base)
    evaluator = Evaluator(FitnessConfig(tasks=tasks, include_path=[folder]))
    per_document = utils.apply_template
    compile_templates_once()
    once = utils.apply_template
    seconds, scores = {"per document": [], "once": []}, {}
    for _ in range(args.repeats):
        for name, function in (("per document", per_document), ("once", once)):
            utils.apply_template = function
            start = time.perf_counter()
            scores[name], _ = evaluator.score_with_stderr(model, tokenizer, tasks=tasks, limit=args.limit)
            seconds[name].append(time.perf_counter() - start)
    utils.apply_template = once
    slow, fast = statistics.median(seconds["per document"]), statistics.median(seconds["once"])
    print(f"{len(tasks)} tasks x {args.limit} examples, median of {args.repeats}: compiled per document {slow:.2f} s, "
          f"compiled once {fast:.2f} s, ratio {slow / fast:.2f}x; scores equal: {scores['per document'] == scores['once']}")


if __name__ == "__main__":
    main()
