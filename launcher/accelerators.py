"""Accelerator requests ("H100:8", "a100", "cpu") parsed into canonical (type, count).

Kept free of pydantic and of the catalog so that the spec, the catalog and every
backend agree on one spelling of each GPU without paying for each other's imports.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

CPU = "cpu"

# Canonical name -> accepted spellings (compared case-insensitively, "_" == "-").
_ALIASES: dict[str, tuple[str, ...]] = {
    "H100": ("h100", "h100-80gb", "h100-sxm", "h100-sxm5", "nvidia-h100-80gb"),
    "H200": ("h200", "h200-141gb", "h200-sxm", "nvidia-h200", "nvidia-h200-141gb"),
    "B200": ("b200", "b200-sxm6", "nvidia-b200"),
    "GH200": ("gh200", "gh200-96gb", "nvidia-gh200"),
    "A100-80GB": ("a100-80gb", "a100-80g", "a100-sxm4-80gb", "nvidia-a100-80gb"),
    "A100-40GB": ("a100", "a100-40gb", "a100-40g", "nvidia-tesla-a100"),
    "L4": ("l4", "nvidia-l4"),
    "T4": ("t4", "nvidia-tesla-t4"),
    "A10G": ("a10g",),
    "A10": ("a10",),
    "L40S": ("l40s", "nvidia-l40s"),
    "V100": ("v100", "v100-16gb", "nvidia-tesla-v100"),
    "MI300X": ("mi300x", "amd-mi300x", "instinct-mi300x"),
    CPU: ("cpu", "none"),
}
_LOOKUP = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
CANONICAL_NAMES: tuple[str, ...] = tuple(_ALIASES)


@dataclass(frozen=True)
class Accelerator:
    """What one node asks for: a canonical GPU type and how many (0 for cpu)."""

    type: str
    count: int

    @property
    def is_gpu(self) -> bool:
        return self.type != CPU

    def __str__(self) -> str:
        return self.type if not self.is_gpu else f"{self.type}:{self.count}"


def canonical_name(name: str) -> str:
    """The canonical spelling of an accelerator name, or ValueError with a suggestion."""
    key = name.strip().lower().replace("_", "-")
    if key in _LOOKUP:
        return _LOOKUP[key]
    close = difflib.get_close_matches(key, list(_LOOKUP), n=1, cutoff=0.6)
    hint = f"did you mean {_LOOKUP[close[0]]!r}? " if close else ""
    raise ValueError(
        f"unknown accelerator {name!r}; {hint}known: {', '.join(CANONICAL_NAMES)}"
    )


def parse(text: str) -> Accelerator:
    """Parse "TYPE[:COUNT]"; a GPU without a count means one, "cpu" means none."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError('expected "TYPE[:COUNT]" such as "H100:8", "L4" or "cpu"')
    name, sep, count_text = text.strip().partition(":")
    canonical = canonical_name(name)
    if canonical == CPU:
        if sep and count_text.strip() not in ("", "0"):
            raise ValueError('"cpu" takes no count; write accelerators: cpu')
        return Accelerator(CPU, 0)
    if not sep:
        return Accelerator(canonical, 1)
    try:
        count = int(count_text)
    except ValueError:
        raise ValueError(f"GPU count {count_text!r} is not a whole number (e.g. {canonical}:8)") from None
    if not 1 <= count <= 16:
        raise ValueError(f"GPU count must be between 1 and 16 per node, got {count}")
    return Accelerator(canonical, count)
