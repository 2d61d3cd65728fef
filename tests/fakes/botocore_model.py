"""Check request parameters against botocore's service model, as AWS does before it reads a request.

botocore's ParamValidator (run by every client before sending) checks types, required members, unknown members
and minimums. The service also enforces what the model says and botocore leaves to it: maximum lengths and
values, string patterns and enums. `violations` checks both, so a fake that accepts anything (moto) can refuse
what AWS would refuse. Patterns in the models are Java regular expressions (`\\p{L}`, `\\p{Alnum}`, `(?<!-)`):
the `regex` module reads them; Java's `String.matches` is a whole-string match, hence `fullmatch`.
"""

from __future__ import annotations

import functools
from typing import Any

import regex
from botocore.model import Shape
from botocore.validate import ParamValidator

_SHOWN = 60  # characters of a bad value quoted in a message


def violations(params: Any, shape: Shape) -> list[str]:
    """Every way `params` (as parsed from the wire) breaks `shape`; [] when AWS's own checks would pass it."""
    report = ParamValidator().validate(params, shape)
    found = report.generate_report().splitlines() if report.has_errors() else []
    _check(params, shape, "", found)
    return found


@functools.cache
def _pattern(text: str) -> Any:
    return regex.compile(text)  # a pattern the regex module cannot read raises: never skipped silently


def _check(value: Any, shape: Shape, path: str, found: list[str]) -> None:
    kind = shape.type_name
    limits = shape.metadata
    where = path or "input"
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _check(value[name], member, f"{path}.{name}" if path else name, found)
    elif kind == "list" and isinstance(value, list):
        if "max" in limits and len(value) > limits["max"]:
            found.append(f"{where}: {len(value)} items, more than the model's maximum {limits['max']}")
        for index, item in enumerate(value):
            _check(item, shape.member, f"{where}[{index}]", found)
    elif kind == "map" and isinstance(value, dict):
        if "max" in limits and len(value) > limits["max"]:
            found.append(f"{where}: {len(value)} entries, more than the model's maximum {limits['max']}")
        for key, item in value.items():
            _check(key, shape.key, f"{where} key {key[:_SHOWN]!r}", found)
            _check(item, shape.value, f"{where}[{key[:_SHOWN]!r}]", found)
    elif kind == "string" and isinstance(value, str):
        shown = repr(value[:_SHOWN]) + ("..." if len(value) > _SHOWN else "")
        if "max" in limits and len(value) > limits["max"]:
            found.append(f"{where}: {len(value)} characters, more than the model's maximum {limits['max']}")
        if "pattern" in limits and not _pattern(limits["pattern"]).fullmatch(value):
            found.append(f"{where}: {shown} does not match the model's pattern {limits['pattern']}")
        if shape.enum and value not in shape.enum:
            found.append(f"{where}: {shown} is not one of the model's {len(shape.enum)} values of {shape.name}")
    elif (kind in ("integer", "long", "float", "double") and isinstance(value, (int, float))
          and "max" in limits and value > limits["max"]):
        found.append(f"{where}: {value} is more than the model's maximum {limits['max']}")
