"""Compare the result tables of two study runs, timings aside: do two versions of the code compute the same study?

    python tools/compare_results.py data/results/smoke /tmp/before/smoke

For every CSV file under either folder (same relative path), the rows are compared cell by cell after dropping
the columns that measure time or depend on the machine's load (real-time factors, seconds, milliseconds, speed-ups,
ratios of timings, thread counts, CPU minutes) and sorting the rows. Prints one line per file: identical,
different (with the columns and the number of rows that differ), or only in one run. The exit status is 0 when
every table present in both is identical and no table is missing from one of them. Use it to check that a
refactoring keeps every result: run the smoke study before and after (`make study PRESET=smoke` into two
results folders) and compare.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

# columns that measure time (or derive from timings) and so differ between any two runs
TIMING_COLUMN = re.compile(
    r"real.time.factor|rtf|_s$|_s_|seconds|_ms$|ms_|_us|speedup|ratio|crossover|wins_at|loses_at|threads|cpu_|"
    r"duration|elapsed|finished|started|repeats|share|calls_per|forward|operator_time|dense_ms|sparse_ms|time|"
    r"warning|checkpoint_sha256|checkpoint_bytes",
    re.IGNORECASE,
)
# columns that hold paths, which differ with the work folder of each run
PATH_COLUMN = re.compile(r"checkpoint|path|twin|source|folder", re.IGNORECASE)
KEY = ["model", "frame_ms"]  # a row of a table of models: compared with the row of the same model


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """`table` without its timing and path columns, rows sorted by every remaining column, index reset."""
    kept = [c for c in table.columns if c in KEY or not (TIMING_COLUMN.search(c) or PATH_COLUMN.search(c))]
    table = table[kept]
    return table.sort_values(kept, kind="stable", na_position="last").reset_index(drop=True) if kept else table


def compare(a: Path, b: Path) -> str | None:
    """None when the two CSV files hold the same results, else what differs. A table of models (columns model and
    frame_ms) is compared model by model: rows of a model only one run evaluated are counted, not compared."""
    left, right = comparable(pd.read_csv(a)), comparable(pd.read_csv(b))
    note = ""
    if set(KEY) <= set(left.columns) and set(KEY) <= set(right.columns):
        keys_left = set(map(tuple, left[KEY].astype(str).values))
        keys_right = set(map(tuple, right[KEY].astype(str).values))
        common = keys_left & keys_right
        if keys_left != keys_right:
            note = (f" ({len(keys_left - keys_right)} models only in the first run, "
                    f"{len(keys_right - keys_left)} only in the second; {len(common)} compared)")
            left, right = (t[[k in common for k in map(tuple, t[KEY].astype(str).values)]].reset_index(drop=True)
                           for t in (left, right))
    if list(left.columns) != list(right.columns):
        only = sorted(set(left.columns) ^ set(right.columns))
        return f"columns differ: {', '.join(only)}"
    if len(left) != len(right):
        return f"{len(left)} rows against {len(right)}"
    differing = [c for c in left.columns if not left[c].equals(right[c])]
    if not differing:
        return ("same results" + note) if note else None
    rows = int((left[differing] != right[differing]).any(axis=1).sum())
    return f"{rows} rows differ in {', '.join(differing)}{note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="results folder of one run, e.g. data/results/smoke")
    parser.add_argument("second", type=Path, help="results folder of the other run")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder of results")
    files = sorted({p.relative_to(f) for f in (args.first, args.second) for p in f.rglob("*.csv")})
    ok = True
    for rel in files:
        a, b = args.first / rel, args.second / rel
        if not (a.is_file() and b.is_file()):
            print(f"{rel}: only in {args.first if a.is_file() else args.second}")
            ok = False
            continue
        difference = compare(a, b)
        if difference is None or difference.startswith("same results"):
            print(f"{rel}: identical{difference.removeprefix('same results') if difference else ''}")
        else:
            print(f"{rel}: DIFFERENT: {difference}")
        ok = ok and difference is None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
