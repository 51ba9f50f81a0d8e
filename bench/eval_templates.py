"""Evaluation time with Jinja task templates: lm-eval's own `apply_template` (one compile per rendered
document) against the lm-eval fence's (`hubevo.evaluation.lm_eval_fence`: one compile per template), in the same run.

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
from hubevo.evaluation import lm_eval_fence
from hubevo.evaluation.evaluator import Evaluator


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
    fence = lm_eval_fence.replacements
    renderers = {"per document": utils.apply_template, "once": lm_eval_fence._apply_template}
    seconds, scores = {"per document": [], "once": []}, {}
    for _ in range(args.repeats):
        for name, render in renderers.items():  # the fence as it is, with lm-eval's own renderer or hubevo's
            lm_eval_fence.replacements = lambda render=render: [
                (module, attr, render if attr == "apply_template" else stand_in) for module, attr, stand_in in fence()]
            start = time.perf_counter()
            scores[name] = evaluator.scorer.score(model, tokenizer, tasks=tasks, limit=args.limit).scores
            seconds[name].append(time.perf_counter() - start)
    lm_eval_fence.replacements = fence
    slow, fast = statistics.median(seconds["per document"]), statistics.median(seconds["once"])
    print(f"{len(tasks)} tasks x {args.limit} examples, median of {args.repeats}: compiled per document {slow:.2f} s, "
          f"compiled once {fast:.2f} s, ratio {slow / fast:.2f}x; scores equal: {scores['per document'] == scores['once']}")


if __name__ == "__main__":
    main()
