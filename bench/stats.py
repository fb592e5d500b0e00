"""Small statistics shared by the benchmarks, and where their results go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 to 1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


RESULTS = Path(__file__).parent / "results"


def save(name: str, results: dict[str, Any], *, show: bool = True) -> None:
    """``bench/results/<name>.json`` (the latest run, which BENCHMARKS.md reports), and stdout."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    if show:
        print(json.dumps(results, indent=2))
