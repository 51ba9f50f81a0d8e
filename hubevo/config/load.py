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


def format_validation_error(err: ValidationError, *, source: str) -> str:
    """Every field error of `err`: one line when there is one, else a header and one line per field."""
    header = f"invalid run config {source}".rstrip()
    fields = [f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}" for item in err.errors()]
    if len(fields) == 1:
        return f"{header}: {fields[0]}"
    return "\n".join([f"{header}:", *(f"  {field}" for field in fields)])


def parse_config(data: dict, *, root: Path, source: str = "") -> RunConfig:
    try:
        return RunConfig.model_validate(data).resolved(root)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source=source)) from None


def load_config(path: str | Path, *, mergekit_options: dict | None = None) -> RunConfig:
    """The run file at `path`; a mergekit-evolve config is converted, with `mergekit_options` (its command line's
    options, flag -> value) if given."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"run config {str(path)!r} does not exist; pass the path of a YAML file")
    try:
        data = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise ConfigError(f"run config {str(path)!r} is not valid YAML{yaml_where(err)}: "
                          f"{getattr(err, 'problem', None) or err}; fix the YAML syntax there") from None
    if not isinstance(data, dict):
        raise ConfigError(f"run config {str(path)!r} must be a YAML mapping, got {type(data).__name__}")
    if is_mergekit_evolve(data):
        return converted_config(data, path=path, options=mergekit_options)
    if mergekit_options:
        raise ConfigError(f"mergekit-evolve's options ({', '.join(mergekit_options)}) apply only to a mergekit-evolve "
                          f"config, and {str(path)!r} is a hubevo run file; set those fields in it instead")
    return parse_config(data, root=path.resolve().parent, source=repr(str(path)))


def converted_config(data: dict, *, path: Path, options: dict | None = None) -> RunConfig:
    """A mergekit-evolve config (`genome:` and `tasks:`) run as the hubevo run it converts to, with `options` from
    its command line (mergekit-evolve's defaults for the rest); one line says so (`hubevo convert` writes that
    run file)."""
    conversion = convert(data, options=options, source=str(path), source_dir=path.resolve().parent)
    cfg = parse_config(conversion.data, root=path.resolve().parent,
                       source=f"{str(path)!r} (converted from mergekit-evolve)")
    logging.getLogger("hubevo").info(conversion.summary(str(path)))
    return cfg
