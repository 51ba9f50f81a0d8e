"""The run file read: YAML (duplicate keys refused) to `RunConfig`, every problem named at once.

Paths are resolved against the YAML file's folder; a pydantic error becomes one `ConfigError` that
lists each field with what is allowed, before torch, mergekit or lm-eval is imported. A mergekit-evolve
config (`genome:` and `tasks:`) is read as the hubevo run it converts to (`hubevo.config.mergekit_evolve`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import ValidationError

from hubevo.config.mergekit_evolve import convert, is_mergekit_evolve
from hubevo.config.run import RunConfig
from hubevo.errors import ConfigError
from hubevo.files import read_text


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (not the last one winning)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys may be overridden on purpose
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"key {key!r} is given twice (first at line {seen[key] + 1})", key_node.start_mark)
            seen.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep=deep)


def yaml_where(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def field_error(item: dict) -> str:
    """`loc: msg`, without pydantic's "Value error, " and without the field named twice when the message names it
    (an error raised for a nested field, e.g. `search.options.sigma0: ...` under `search`)."""
    loc = ".".join(str(part) for part in item["loc"]) or "(top level)"
    msg = item["msg"].removeprefix("Value error, ")
    return msg if loc != "(top level)" and msg.startswith(f"{loc}.") else f"{loc}: {msg}"


def format_validation_error(err: ValidationError, *, source: str) -> str:
    """Every field error of `err`: one line when there is one, else a header and one line per field."""
    header = f"invalid run config {source}".rstrip()
    fields = [field_error(item) for item in err.errors()]
    if len(fields) == 1:
        return f"{header}: {fields[0]}"
    return "\n".join([f"{header}:", *(f"  {field}" for field in fields)])


def parse_config(data: dict, *, root: Path, source: str = "", expand_vars: bool = True) -> RunConfig:
    """`data` as a run config, its paths read relative to `root` (`hubevo.config.paths`); `expand_vars=False` for
    a run file from someone else, whose `$VAR` must not reach into this machine's environment."""
    try:
        return RunConfig.model_validate(data, context={"root": root}).resolved(root, expand_vars=expand_vars)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source=source)) from None


def load_config(path: str | Path, *, mergekit_options: dict | None = None) -> RunConfig:
    """The run file at `path`; a mergekit-evolve config is converted, with `mergekit_options` (its command line's
    options, flag -> value) if given."""
    path = Path(path)
    data = read_yaml(path, what="run config")
    if is_mergekit_evolve(data):
        return converted_config(data, path=path, options=mergekit_options)
    if mergekit_options:
        raise ConfigError(f"mergekit-evolve's options ({', '.join(mergekit_options)}) apply only to a mergekit-evolve "
                          f"config, and {str(path)!r} is a hubevo run file; set those fields in it instead")
    return parse_config(data, root=path.resolve().parent, source=repr(str(path)))


def read_yaml(path: Path, *, what: str) -> dict:
    """The YAML mapping in the file at `path` (a key given twice refused); one ConfigError line naming the file
    when it is missing, a folder, unreadable, not UTF-8, not YAML or not a mapping."""
    path = Path(path)
    text = read_text(path, what=what, fix=_yaml_fix(path))
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML{yaml_where(err)}: "
                          f"{' '.join(str(getattr(err, 'problem', None) or err).split())}; "
                          "fix the YAML syntax there") from None
    except ValueError as err:  # a value YAML's own types refuse, e.g. a date 2024-13-01
        raise ConfigError(f"{what} {str(path)!r} holds a value YAML cannot read ({err}); quote it") from None
    except RecursionError:
        raise ConfigError(f"{what} {str(path)!r} nests its YAML too deeply to read; flatten it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(path)!r} must be a YAML mapping, got {type(data).__name__}")
    return data


def _yaml_fix(path: Path) -> str:
    """What to pass instead of `path`: a YAML file (one that a folder `path` holds, if any)."""
    inside = sorted(p.name for p in path.glob("*.y*ml") if p.suffix in (".yaml", ".yml")) if path.is_dir() else []
    return "pass the path of a YAML file" + (f", e.g. {str(path / inside[0])!r}" if inside else "")


def converted_config(data: dict, *, path: Path, options: dict | None = None) -> RunConfig:
    """A mergekit-evolve config (`genome:` and `tasks:`) run as the hubevo run it converts to, with `options` from
    its command line (mergekit-evolve's defaults for the rest); one line says so (`hubevo convert` writes that
    run file)."""
    conversion = convert(data, options=options, source=str(path), source_dir=path.resolve().parent)
    cfg = parse_config(conversion.data, root=path.resolve().parent,
                       source=f"{str(path)!r} (converted from mergekit-evolve)")
    logging.getLogger("hubevo").info(conversion.summary(str(path)))
    return cfg
