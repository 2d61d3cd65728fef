"""Test time per area of the suite, from the first leg's JUnit report.

The 20-minute CI budget is shared by every backend; when it tightens, this says which area to make cheaper.
Times are summed over pytest-xdist workers (so their total exceeds the wall time); an area is a backend's or a
subsystem's test files: `tests/conformance`, `tests/reliability`, or `tests/test_<area>_*.py`'s first word.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

# Areas whose files are named after a two-word backend or subsystem.
TWO_WORD = ("azure_openai", "lambda_cloud", "hf_jobs", "pai_dlc", "minimal_install", "bundle_cache")


def area_of(classname: str) -> str:
    """`tests.reliability.test_faults.TestX` -> reliability; `tests.test_hf_jobs_e2e` -> hf_jobs."""
    parts = classname.split(".")
    if len(parts) > 2 and parts[1] != parts[-1] and not parts[1].startswith("test_"):
        return parts[1]
    module = next((p for p in parts if p.startswith("test_")), parts[-1])[len("test_"):]
    return next((name for name in TWO_WORD if module.startswith(name)), module.split("_")[0])


def main(report: Path) -> None:
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for case in ET.parse(report).getroot().iter("testcase"):
        area = area_of(case.get("classname", ""))
        seconds[area] += float(case.get("time", 0))
        counts[area] += 1
    print(f"test time per area (summed over workers; {sum(seconds.values()):.0f} s in all):")
    for area, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"  {area:<20} {spent:7.1f} s  {counts[area]:5d} tests")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
