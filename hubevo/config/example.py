"""The config reference: the run file's top-level sections and an annotated example of every field.

`hubevo config --example` prints `example_run_file()`: every top-level section of `RunConfig` with
its fields, their defaults and a comment each (the field's own description, else a note here), so the
file is the reference and stays in step with the models. It loads as it is: its members and tasks are
the demo zoo's (`hubevo zoo zoo` writes them beside it). `sections()` is the short list that
`hubevo evolve --help` prints.
"""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

from hubevo.config.commented import comment_lines, commented_yaml
from hubevo.config.run import RunConfig
from hubevo.config.search import AUTO_STRATEGY, STRATEGY_OPTIONS

# what a user must give; every other value below is the field's default
EXAMPLE_DATA = {
    "name": "example",
    "population": {"members": ["./zoo/digits", "./zoo/letters"], "base_model": "./zoo/base"},
    "fitness": {"tasks": ["demo_digits", "demo_letters"], "include_path": ["./zoo/tasks"],
                "heldout": ["demo_combined_heldout"]},
}

SECTION_NOTES = {
    "name": "the run's name: its folder, its Hub repos and its rows in the Space",
    "population": "1 seed: the members (local folders or Hub repos), the base model, a Hub query",
    "fitness": "2 evaluate: the lm-eval tasks, their sampling, validation and held-out tasks, lm-eval's options",
    "selection": "3 select: how the GA picks parents",
    "crossover": "4 crossover: the merge methods a child may use and the ranges of their genes",
    "mutation": "5 mutate: gene perturbation and fine-tuning (dpo, sft)",
    "budget": "when the run stops: generations, evaluations, wall time",
    "search": f"the search strategy ({', '.join([AUTO_STRATEGY, *STRATEGY_OPTIONS])}) and its options",
    "execution": "where candidates run: this process or a Ray cluster",
    "output": "the run folder",
    "publish": "6 publish: what goes to the Hub, and where the run state lives",
    "tracking": "experiment trackers that follow the run (trackio, wandb, tensorboard)",
    "seed": "seeds every random draw of the run (the fitness/validation split too, unless fitness.seed is set)",
    "dtype": "the dtype of the resident weights: float32, bfloat16 or float16",
}

FIELD_NOTES = {  # fields without a description of their own
    "selection.method": "roulette (fitness-proportional) or tournament.",
    "crossover.methods": "mergekit merge methods a child may use (those that fit the population are kept).",
    "budget.generations": "Generations after generation 0.",
    "budget.population_size": "Candidates per generation (the GA's population; CMA-ES sets its own, "
                              "search.options.popsize).",
    "budget.max_evaluations": "Stop after this many candidates are scored; None = no limit.",
    "budget.wall_time_s": "Stop after this many seconds; None = no limit.",
    "execution.backend": "local (this process) or ray (a Ray cluster, execution.address).",
    "output.dir": "The run folder (results.parquet, the survivors, the run state); relative to this file.",
    "publish.namespace": "Hub user or org the survivors are pushed to.",
    "publish.private": "Create the Hub repos private.",
    "publish.push": "What is pushed to the Hub: survivors, champion or none.",
}

OMITTED = {"fitness.seed"}  # follows the run's seed unless given: writing the default would pin it


def section_model(name: str) -> type[BaseModel] | None:
    """The model of top-level field `name` (None for a plain value such as `seed`)."""
    annotation = RunConfig.model_fields[name].annotation
    return next((a for a in (annotation, *typing.get_args(annotation))
                 if isinstance(a, type) and issubclass(a, BaseModel)), None)


def source_file(model: type[BaseModel]) -> str:
    """Where `model`'s fields are described: `hubevo/config/population.py`."""
    return str(Path(*model.__module__.split("."))) + ".py"


def sections() -> list[tuple[str, str, str]]:
    """(section, the file its fields are described in, what it holds) for every top-level field of a run file."""
    rows = []
    for name in RunConfig.model_fields:
        model = section_model(name)
        where = source_file(model) if model else source_file(RunConfig)
        rows.append((name, where, SECTION_NOTES.get(name) or (model.__doc__ or "").strip().split("\n")[0]))
    return rows


def reference_text() -> str:
    """The sections of a run file and where each field is described (`hubevo evolve --help`)."""
    width = max(len(name) for name, _, _ in sections())
    lines = ["The run file (YAML; paths relative to it) has these top-level sections; only population and "
             "fitness are required:", ""]
    lines += [f"  {name:<{width}}  {what} ({where})" for name, where, what in sections()]
    lines += ["", "Every field, its default and its description: `hubevo config --example` (an annotated run file); "
              "the descriptions are the pydantic Field(description=...) texts in those files.",
              "A mergekit-evolve config (genome: + tasks:) runs as it is; `hubevo convert` writes the run file."]
    return "\n".join(lines)


def field_notes(name: str, model: type[BaseModel]) -> dict[str, str]:
    return {f"{name}.{field}": info.description or FIELD_NOTES.get(f"{name}.{field}")
            or f"See {source_file(model)}." for field, info in model.model_fields.items()}


def example_data() -> dict:
    """Every field of a run file with its default, the members and tasks of `EXAMPLE_DATA`."""
    dumped = RunConfig.model_validate(EXAMPLE_DATA).model_dump(mode="json")
    data = {}
    for name in RunConfig.model_fields:
        value = dumped[name]
        if isinstance(value, dict):
            given = EXAMPLE_DATA.get(name, {})
            value = {k: given.get(k, v) for k, v in value.items() if f"{name}.{k}" not in OMITTED}
        data[name] = value
    return data


def example_run_file() -> str:
    """An annotated run file: every top-level section, each field with its default and a comment."""
    notes = {}
    for name in RunConfig.model_fields:
        model = section_model(name)
        notes[name] = SECTION_NOTES.get(name, "")
        if model is not None:
            notes |= field_notes(name, model)
    header = [
        "# hubevo run file: every top-level section, each field with its default and what it does.",
        "# Runs as it is on the demo zoo:",
        "#   hubevo config --example > run.yaml && hubevo zoo zoo && hubevo evolve run.yaml",
        "# Only population and fitness are required; paths are relative to this file.",
        *comment_lines("Strategy options (search.options) depend on search.strategy: see GAOptions, "
                       "CMAESOptions, DFSOptions, PSDFSOptions, NSGA2Options in hubevo/config/search.py.", indent=0),
        "",
    ]
    body = []
    for name, value in example_data().items():
        body += commented_yaml({name: value}, notes=notes) + [""]
    return "\n".join(header + body).rstrip() + "\n"
