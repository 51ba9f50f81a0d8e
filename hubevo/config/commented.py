"""Run files written for people: plain data as YAML with a comment above each field (config stage).

`hubevo config --example` and `hubevo convert` both write run files a user reads and edits, so each
field carries the comment that says what it is or where it came from. Values are written in YAML's flow
style on the field's own line (lists of tasks or members one item a line), so the file reads top to
bottom like the config reference and loads back to the same data.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import yaml

WIDTH = 110  # characters of a comment line, indentation included


def flow(value) -> str:
    """`value` as one line of YAML (a scalar, or a list or mapping in flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16, sort_keys=False, allow_unicode=True)
    return text.removesuffix("...\n").strip()


def comment_lines(text: str | None, *, indent: int) -> list[str]:
    if not text:
        return []
    pad = " " * indent
    return [f"{pad}# {line}" for line in textwrap.wrap(text, width=max(40, WIDTH - indent - 2))]


def commented_yaml(data: Mapping, *, notes: Mapping[str, str], prefix: str = "", indent: int = 0) -> list[str]:
    """YAML lines of `data`, the note of each dotted field name (`fitness.limit`) as a comment above it."""
    lines: list[str] = []
    pad = " " * indent
    for key, value in data.items():
        path = f"{prefix}{key}"
        lines += comment_lines(notes.get(path), indent=indent)
        line = f"{pad}{key}: {flow(value)}"
        if isinstance(value, Mapping) and value and (len(line) > WIDTH or _nested(value, notes, f"{path}.")):
            lines += [f"{pad}{key}:", *commented_yaml(value, notes=notes, prefix=f"{path}.", indent=indent + 2)]
        elif isinstance(value, list) and value and (len(line) > WIDTH or any(isinstance(v, Mapping) for v in value)):
            lines += [f"{pad}{key}:", *(f"{pad}  - {flow(item)}" for item in value)]
        else:
            lines.append(line)
    return lines


def _nested(value: Mapping, notes: Mapping[str, str], prefix: str) -> bool:
    """Whether a mapping is written key by key: some key has a note, or some value is a mapping."""
    return any(f"{prefix}{k}" in notes or isinstance(v, Mapping) for k, v in value.items())
