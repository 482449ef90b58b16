"""Deduplication benchmark: accuracy, time and memory against a simple rapidfuzz baseline.

For each size, a seeded synthetic data set (:mod:`crmkit.dedupe.synthetic`: contacts from
seven countries, about 10% duplicates with typos, swapped or abbreviated names, other
email and phone formats, missing fields) is clustered by :func:`crmkit.dedupe.cluster`
and, in the same run, by a straightforward baseline: one blocking key (the lower-cased
last name), every pair inside a block scored with ``rapidfuzz.process.cdist``
(``token_sort_ratio`` on the whole record as one string), pairs above a cut-off
proposed. Both are scored pairwise against the generator's ground truth (precision,
recall, F1).

Each size runs in a fresh process so that its peak memory (``ru_maxrss``) is its own.
Times are wall-clock seconds of the deduplication alone (the records are generated
while the engine reads them; generation time is reported apart).

    python benchmarks/bench_dedupe.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from crmkit.dedupe.clustering import cluster_run
from crmkit.dedupe.synthetic import generate, true_pairs


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _scores(predicted: int, correct: int, truth: int) -> dict[str, float]:
    precision = correct / predicted if predicted else 1.0
    recall = correct / truth if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def run_engine(size: int, seed: int) -> dict[str, Any]:
    """Cluster ``size`` generated records with crmkit.dedupe; accuracy, time, memory."""
    entities = array("q")
    generation = 0.0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal generation
        stream = generate(size, seed=seed)
        while True:
            started = time.perf_counter()
            record = next(stream, None)
            generation += time.perf_counter() - started
            if record is None:
                return
            entities.append(record.pop("entity_id"))
            yield record

    started = time.perf_counter()
    run = cluster_run(records())
    elapsed = time.perf_counter() - started - generation
    labels = np.frombuffer(entities, dtype=np.int64)
    predicted = correct = 0
    for group in run.groups:
        for a, b in itertools.combinations(group.rows, 2):
            predicted += 1
            correct += int(labels[a] == labels[b])
    return {
        "size": size,
        "seconds": elapsed,
        "generation_seconds": generation,
        "peak_mib": _peak_mib(),
        "candidate_pairs": run.scored_pairs,
        "groups": len(run.groups),
        "true_pairs": true_pairs(labels.tolist()),
        **_scores(predicted, correct, true_pairs(labels.tolist())),
    }


def run_baseline(size: int, seed: int, cutoff: float) -> dict[str, Any]:
    """One simple block (lower-cased last name), all pairs in it scored with rapidfuzz."""
    blocks: dict[str, list[int]] = {}
    texts: list[str] = []
    labels: list[int] = []
    for row, record in enumerate(generate(size, seed=seed)):
        labels.append(record["entity_id"])
        last = (record["last_name"] or "").strip().lower()
        blocks.setdefault(last, []).append(row)
        texts.append(
            " ".join(
                [
                    record["first_name"] or "",
                    record["last_name"] or "",
                    *record["emails"],
                    *record["phones"],
                    record["city"] or "",
                ]
            ).lower()
        )
    label_array = np.array(labels, dtype=np.int64)
    started = time.perf_counter()
    predicted = correct = scored = 0
    for rows in blocks.values():
        if len(rows) < 2:
            continue
        members = np.array(rows, dtype=np.int64)
        strings = [texts[r] for r in rows]
        # Row chunks keep the score matrix small whatever the block size.
        for start in range(0, len(rows), 2000):
            matrix = process.cdist(
                strings[start : start + 2000],
                strings,
                scorer=fuzz.token_sort_ratio,
                score_cutoff=cutoff,
                dtype=np.uint8,
                workers=-1,
            )
            i, j = np.nonzero(matrix)
            i = i + start
            keep = i < j
            scored += int(min(2000, len(rows) - start) * len(rows))
            a, b = members[i[keep]], members[j[keep]]
            predicted += int(a.size)
            correct += int((label_array[a] == label_array[b]).sum())
    elapsed = time.perf_counter() - started
    return {
        "size": size,
        "seconds": elapsed,
        "peak_mib": _peak_mib(),
        "scored_pairs": scored // 2,
        "largest_block": max(len(r) for r in blocks.values()),
        **_scores(predicted, correct, true_pairs(labels)),
    }


def _child(args: argparse.Namespace) -> None:
    if args.one_baseline:
        result = run_baseline(args.one_baseline, args.seed, args.cutoff)
    else:
        result = run_engine(args.one, args.seed)
    print(json.dumps(result))


def _spawn(*options: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *options], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run every size (each in a fresh process) and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--cutoff", type=float, default=80.0, help="baseline token_sort_ratio cut-off"
    )
    parser.add_argument(
        "--baseline-sizes", default=None, help="sizes to run the baseline at (default: all)"
    )
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--one-baseline", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one or args.one_baseline:
        _child(args)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    baseline_sizes = (
        sizes if args.baseline_sizes is None else [int(s) for s in args.baseline_sizes.split(",")]
    )
    header = (
        f"{'':9} {'records':>9} {'precision':>9} {'recall':>7} {'F1':>6} "
        f"{'seconds':>8} {'peak MiB':>9} {'pairs scored':>13}"
    )
    print(header)
    for size in sizes:
        seed = str(args.seed)
        engine = _spawn("--one", str(size), "--seed", seed)
        print(
            f"{'crmkit':9} {size:>9,} {engine['precision']:>9.4f} {engine['recall']:>7.4f} "
            f"{engine['f1']:>6.4f} {engine['seconds']:>8.1f} {engine['peak_mib']:>9.0f} "
            f"{engine['candidate_pairs']:>13,}",
            flush=True,
        )
        if size in baseline_sizes:
            base = _spawn("--one-baseline", str(size), "--seed", seed, "--cutoff", str(args.cutoff))
            print(
                f"{'baseline':9} {size:>9,} {base['precision']:>9.4f} {base['recall']:>7.4f} "
                f"{base['f1']:>6.4f} {base['seconds']:>8.1f} {base['peak_mib']:>9.0f} "
                f"{base['scored_pairs']:>13,}",
                flush=True,
            )
            print(
                f"{'':9} {'':>9} crmkit/baseline: time x{engine['seconds'] / base['seconds']:.2f}, "
                f"F1 {engine['f1'] - base['f1']:+.4f}",
                flush=True,
            )
        print(
            f"{'':9} {'':>9} (generating the records took {engine['generation_seconds']:.1f} s; "
            f"{engine['groups']:,} groups, {engine['true_pairs']:,} true pairs)",
            flush=True,
        )


if __name__ == "__main__":
    main()
