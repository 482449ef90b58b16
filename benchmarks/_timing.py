"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    """The fastest of ``runs`` timings of ``fn`` (seconds)."""
    return min(timed(fn) for _ in range(runs))


def print_ratios(title: str, first: str, rows: list[tuple[str, float, float, str]]) -> None:
    """Print ``title`` and a table of ``(label, crmkit seconds, baseline seconds, target)``
    rows with their ratio; ``first`` heads the label column."""
    print(title)
    width = max(len(r[0]) for r in rows)
    print(f"{first:<{width}}  {'crmkit':>9}  {'baseline':>9}  {'ratio':>6}  target")
    for label, ours, base, target in rows:
        print(
            f"{label:<{width}}  {ours * 1000:>7.1f}ms  {base * 1000:>7.1f}ms  "
            f"{ours / base:>5.2f}x  {target}"
        )
