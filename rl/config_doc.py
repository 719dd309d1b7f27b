"""Render the documented ``configs/default.yaml`` from the dataclass schemas nested in :mod:`rl.config`.

The comment lines written directly above a field in its schema module (``data/config.py``,
``rl/workers/config.py``, ...; see :mod:`rl.config`) or a trailing ``# ...`` on its line
become its YAML comment, so the schema stays the single source of truth. ``python -m rl.config_doc > configs/default.yaml``
regenerates the file; a test checks the committed file is current and that
every key is documented.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from typing import Any

from rl import config as schema

_FIELD = re.compile(r"^\s+(\w+)\s*:\s*[^=]+(=.*)?$")


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment text (from the lines above it or its own line)."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _FIELD.match(line.split("  #")[0])
        if match and not stripped.startswith(("def ", "\"\"\"", "return")):
            trailing = line.split("  #", 1)[1].strip() if "  #" in line else ""
            text = " ".join(pending + ([trailing] if trailing else []))
            if text:
                comments[match.group(1)] = text
        pending = []
    return comments


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value) if "e" in repr(value) or "." in repr(value) else f"{value}.0"
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return str(value)


def render(obj: Any, indent: int = 0) -> list[str]:
    lines: list[str] = []
    comments = field_comments(type(obj))
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        comment = comments.get(f.name)
        if dataclasses.is_dataclass(value):
            doc = inspect.getdoc(type(value)) or ""
            if doc.startswith(type(value).__name__ + "("):   # dataclass's generated signature
                doc = ""
            text = comment or (doc.splitlines()[0] if doc else None)
            if text:
                lines.append(f"{pad}# {text}")
            lines.append(f"{pad}{f.name}:")
            lines.extend(render(value, indent + 1))
        else:
            if comment:
                lines.append(f"{pad}# {comment}")
            lines.append(f"{pad}{f.name}: {_scalar(value)}")
    return lines


def undocumented(obj: Any, prefix: str = "") -> list[str]:
    """Dotted keys of leaf fields that have no comment."""
    missing = []
    comments = field_comments(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            missing.extend(undocumented(value, key + "."))
        elif f.name not in comments:
            missing.append(key)
    return missing


def default_yaml() -> str:
    header = [
        "# Every configuration key with its default value. Generated from the config schemas (see rl/config.py)",
        "# by `python -m rl.config_doc > configs/default.yaml`; edit the schemas, not this file.",
        "# Recipes (configs/recipes/*.yaml) and `key=value` overrides change these values;",
        "# an unknown key, a value of the wrong type or out of its range is an error naming the key.",
        "",
    ]
    return "\n".join(header + render(schema.Config())) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m rl.config_doc [> configs/default.yaml]``: print every key with its default and comment."""
    from data.cli_help import doc_parser

    doc_parser("python -m rl.config_doc", __doc__,
               usage="python -m rl.config_doc [> configs/default.yaml]").parse_args(argv)
    sys.stdout.write(default_yaml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
