"""Accelerator requests ("H100:8", "a100", "TPU-v5e:8", "cpu") parsed into canonical (type, count).

Kept free of pydantic and of the catalog so that the spec, the catalog and every
backend agree on one spelling of each GPU and TPU without paying for each other's imports.

A GPU's count is per node. A TPU's count is the size of the whole slice, as Cloud TPU names it
(TPU-v5e:8 is v5litepod-8, TPU-v5p:16 is v5p-16): chips for v5e and v6e, TensorCores for v2, v3,
v4 and v5p (two per chip). A slice bigger than one host spans several hosts that the provider
starts together; the facts of each generation (sizes, chip topology, chips per host) live here so
that every backend that offers TPUs reads them from one place.
"""

from __future__ import annotations

import difflib
import re
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
    # TPU generations (slices: see TPU_GENERATIONS); the GKE/Cloud TPU names are accepted too
    "TPU-v2": ("tpu-v2", "v2"),
    "TPU-v3": ("tpu-v3", "v3"),
    "TPU-v4": ("tpu-v4", "v4", "tpu-v4-podslice"),
    "TPU-v5e": ("tpu-v5e", "v5e", "v5litepod", "tpu-v5litepod", "tpu-v5-lite-podslice"),
    "TPU-v5p": ("tpu-v5p", "v5p", "tpu-v5p-slice"),
    "TPU-v6e": ("tpu-v6e", "v6e", "trillium", "tpu-v6e-slice"),
}
_LOOKUP = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
CANONICAL_NAMES: tuple[str, ...] = tuple(_ALIASES)
# a slice written the Cloud TPU way, "v5litepod-8" or "v5p-16" (optionally "tpu-" in front)
_CLOUD_TPU_NAME = re.compile(r"(?:tpu[-_])?(v\d[a-z]*|v5litepod)-(\d+)")


@dataclass(frozen=True)
class TpuGeneration:
    """One TPU generation's slices, as Cloud TPU documents them (tpu/docs/v5e, v5p, v6e, v4, v2, v3)."""

    name: str                   # canonical spelling, "TPU-v5e"
    cloud_name: str             # Cloud TPU's accelerator-type prefix: v5litepod-8, v5p-16
    unit: str                   # what the size in the name counts: "chips" or "TensorCores"
    cores_per_chip: int
    topologies: dict[int, str]  # slice size (as named) -> chip topology, e.g. 16 -> "2x2x2"
    single_host_chips: int = 4  # the biggest slice on one host; bigger ones use 4-chip hosts

    def chips(self, size: int) -> int:
        return size // self.cores_per_chip

    def hosts(self, size: int) -> int:
        """The host VMs a slice spans (4 chips each once it spans more than one)."""
        chips = self.chips(size)
        return 1 if chips <= self.single_host_chips else chips // 4


_V4_SHAPES = {8: "2x2x1", 16: "2x2x2", 32: "2x2x4", 64: "2x4x4", 128: "4x4x4", 256: "4x4x8", 512: "4x8x8",
              1024: "8x8x8", 2048: "8x8x16", 4096: "8x16x16"}
_LITE_SHAPES = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
TPU_GENERATIONS: dict[str, TpuGeneration] = {g.name: g for g in (
    TpuGeneration("TPU-v2", "v2", "TensorCores", 2,
                  {8: "2x2", 32: "4x4", 128: "8x8", 256: "8x16", 512: "16x16"}),
    TpuGeneration("TPU-v3", "v3", "TensorCores", 2,
                  {8: "2x2", 32: "4x4", 64: "4x8", 128: "8x8", 256: "8x16", 512: "16x16", 1024: "16x32",
                   2048: "32x32"}),
    TpuGeneration("TPU-v4", "v4", "TensorCores", 2, _V4_SHAPES),
    TpuGeneration("TPU-v5p", "v5p", "TensorCores", 2, {**_V4_SHAPES, 8192: "16x16x16", 12288: "16x16x24"}),
    TpuGeneration("TPU-v5e", "v5litepod", "chips", 1, _LITE_SHAPES, single_host_chips=8),
    TpuGeneration("TPU-v6e", "v6e", "chips", 1, _LITE_SHAPES, single_host_chips=8),
)}


@dataclass(frozen=True)
class Accelerator:
    """What one node asks for: a canonical GPU type and how many (0 for cpu)."""

    type: str
    count: int

    @property
    def is_gpu(self) -> bool:
        """Asks for an accelerator (a GPU, or a TPU slice: see is_tpu), not a CPU-only machine."""
        return self.type != CPU

    @property
    def tpu(self) -> TpuGeneration | None:
        return TPU_GENERATIONS.get(self.type)

    @property
    def is_tpu(self) -> bool:
        return self.type in TPU_GENERATIONS

    @property
    def chips(self) -> int:
        """Accelerator chips in all: the GPUs of one node, or the TPU slice's chips."""
        return self.tpu.chips(self.count) if self.tpu else self.count

    @property
    def hosts(self) -> int:
        """Machines the request spans: a multi-host TPU slice's hosts, else one."""
        return self.tpu.hosts(self.count) if self.tpu else 1

    @property
    def topology(self) -> str | None:
        """A TPU slice's chip topology ("2x2x2"), the form GKE and Vertex take; None for GPUs."""
        return self.tpu.topologies[self.count] if self.tpu else None

    @property
    def cloud_name(self) -> str | None:
        """Cloud TPU's name for the slice ("v5litepod-8", "v5p-16"); None for GPUs."""
        return f"{self.tpu.cloud_name}-{self.count}" if self.tpu else None

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
    """Parse "TYPE[:COUNT]"; a GPU without a count means one, "cpu" means none, a TPU needs its
    slice size ("TPU-v5e:8", or Cloud TPU's own "v5litepod-8")."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError('expected "TYPE[:COUNT]" such as "H100:8", "L4", "TPU-v5e:8" or "cpu"')
    name, sep, count_text = text.strip().partition(":")
    cloud = _CLOUD_TPU_NAME.fullmatch(name.strip().lower().replace("_", "-")) if not sep else None
    if cloud and name.strip().lower().replace("_", "-") not in _LOOKUP:
        name, sep, count_text = cloud.group(1), ":", cloud.group(2)
    canonical = canonical_name(name)
    if canonical in TPU_GENERATIONS:
        return _tpu_slice(TPU_GENERATIONS[canonical], count_text if sep else "")
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


def _tpu_slice(generation: TpuGeneration, count_text: str) -> Accelerator:
    """A TPU slice of one of the sizes its generation comes in."""
    sizes = ", ".join(str(size) for size in generation.topologies)
    example = f"{generation.name}:{8 if 8 in generation.topologies else next(iter(generation.topologies))}"
    if not count_text.strip():
        raise ValueError(f"a TPU needs its slice size: write e.g. {example} ({generation.cloud_name}-N, "
                         f"N {generation.unit}: {sizes})")
    try:
        size = int(count_text)
    except ValueError:
        raise ValueError(f"TPU slice size {count_text!r} is not a whole number (e.g. {example})") from None
    if size not in generation.topologies:
        raise ValueError(f"{generation.name} comes in slices of {sizes} {generation.unit} "
                         f"({generation.cloud_name}-N); got {size}")
    return Accelerator(generation.name, size)
