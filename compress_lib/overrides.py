"""Settings changed by name: `compress-lib compress --set FIELD=VALUE` and every notebook's `settings` parameter.

    parse_overrides(value, defaults, what, label) -> {field: value}

`value` is a dict ({"finetune_steps": 20}), a string "field=value,field=value" (papermill's `-p settings
'finetune_steps=20,heads_per_step=0.25'`; a list value continues after a comma: "distill_layers=1,3,distill_lr=1e-3")
or a list of "field=value" strings (the CLI's repeated --set). Each value takes the type of the field's default:
integers, numbers, true/false, text, and lists. An unknown field, a value of the wrong type or a
negative number raises one CompressLibError naming the field and the valid fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from compress_lib.errors import CompressLibError


def split_assignments(text: str) -> list[str]:
    """'a=1,b=2,3,c=x' -> ['a=1', 'b=2,3', 'c=x'] (a part without '=' continues the previous value)."""
    items: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" in part or not items:
            items.append(part)
        else:
            items[-1] += "," + part
    return items


def _convert(name: str, raw, default, label: str):
    """`raw` (text, or a value from a dict) as the type of `default`."""
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "text",
            tuple: "a comma-separated list", list: "a comma-separated list"}
    wanted = next((w for t, w in kind.items() if isinstance(default, t)), None)
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return str(raw).lower() in ("true", "1")
        if isinstance(default, (tuple, list)):
            items = raw if isinstance(raw, (tuple, list)) else [x for x in str(raw).split(",") if x.strip()]
            element = float if any(isinstance(x, float) for x in default) else int
            value = tuple(element(x) for x in items)
            if not value:
                raise ValueError
            return value
        if isinstance(default, int):
            if isinstance(raw, float) and not raw.is_integer() or isinstance(raw, bool):
                raise ValueError
            value = int(raw) if not isinstance(raw, str) else int(raw.strip())
        elif isinstance(default, float):
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        else:
            return str(raw)
    except (TypeError, ValueError):
        raise CompressLibError(f"{label} {name}={raw!r}: expected {wanted}") from None
    if not (math.isfinite(value) and value >= 0):
        raise CompressLibError(f"{label} {name}={value}: give a finite number >= 0")
    return value


def _guess(raw):
    """A value whose default is None (e.g. "the preset's choice"): an integer, a number or text, as written."""
    for kind in (int, float):
        try:
            return kind(raw)
        except (TypeError, ValueError):
            pass
    return raw


def parse_overrides(value, defaults: Mapping, what: str, label: str = "settings") -> dict:
    """{field: typed value} of the fields `value` changes (see the module docstring). `defaults` maps each valid
    field to its default (which gives its type; a None default keeps the value as given)."""
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        texts = split_assignments(value) if isinstance(value, str) else list(value)
        items = []
        for text in texts:
            name, sep, raw = str(text).partition("=")
            if not sep or not name.strip():
                raise CompressLibError(f"{label} {text!r} must look like FIELD=VALUE")
            items.append((name.strip(), raw.strip()))
    out = {}
    for name, raw in items:
        if name not in defaults:
            raise CompressLibError(f"unknown {what} {name!r}; valid: {', '.join(defaults)}")
        default = defaults[name]
        out[name] = _convert(name, raw, default, label) if default is not None else _guess(raw)
    return out
