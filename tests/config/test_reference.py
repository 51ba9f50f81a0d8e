"""The config reference: `hubevo config --example` prints an annotated run file that loads and names only real
fields, with every top-level section, field and default; `hubevo evolve --help` lists the sections."""

from __future__ import annotations

import typing

import yaml
from pydantic import BaseModel

from hubevo.cli.main import main
from hubevo.config import RunConfig, load_config


def model_of(annotation) -> type[BaseModel] | None:
    return next((a for a in (annotation, *typing.get_args(annotation))
                 if isinstance(a, type) and issubclass(a, BaseModel)), None)


def test_the_example_run_file_loads_names_only_run_config_fields_and_shows_every_section_with_comments(
        tmp_path, capsys):
    assert main(["config", "--example"]) == 0
    text = capsys.readouterr().out
    data = yaml.safe_load(text)
    assert list(data) == list(RunConfig.model_fields)  # every top-level section, in order
    for section, value in data.items():
        model = model_of(RunConfig.model_fields[section].annotation)
        if model is not None:
            assert set(value) <= set(model.model_fields), section
            assert set(model.model_fields) - set(value) <= {"seed"}, section  # fitness.seed follows the run's
    lines = text.splitlines()
    for i, line in enumerate(lines):  # a comment above every section and field (not above a value's own keys)
        if line.strip() and not line.lstrip().startswith(("#", "- ")) and len(line) - len(line.lstrip()) <= 2:
            assert lines[i - 1].lstrip().startswith("#"), line
    (tmp_path / "run.yaml").write_text(text)
    cfg = load_config(tmp_path / "run.yaml")
    assert [m.path for m in cfg.population.members] == [tmp_path / "zoo" / "digits", tmp_path / "zoo" / "letters"]
    defaults = RunConfig.model_validate({"population": {"members": ["o/a", "o/b"]}, "fitness": {"tasks": ["t"]}})
    for section in ("selection", "crossover", "mutation", "budget", "search", "execution", "publish"):
        assert getattr(cfg, section) == getattr(defaults, section), section  # the defaults, as they are


def test_evolve_help_lists_the_sections_and_where_their_fields_are_described(capsys):
    try:
        main(["evolve", "--help"])
    except SystemExit as done:
        assert done.code == 0
    text = capsys.readouterr().out
    for section in RunConfig.model_fields:
        assert f"\n  {section} " in text, section
    assert "hubevo/config/fitness.py" in text and "hubevo config --example" in text and "examples/" in text
    assert "--max-fevals" in text  # mergekit-evolve's options, for a mergekit-evolve config
