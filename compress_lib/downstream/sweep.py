"""Which models the downstream notebook (08) evaluates: points of the compression trajectories, and the names
the results table gives them.

Notebooks 03-07 each write a trajectory table (one row per point: method, frame rate, density, checkpoint; the
distillation notebook's holds the students, method `distill`, and the truncations, method `truncate`). Of a
pruning trajectory, `spread` keeps a few points evenly spaced from the dense model to the sparsest point; the
students and truncations (`DEPTH_METHODS`) are each a model of a depth of its own and are all evaluated.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# method -> (notebook, its results table), as notebooks 03..07 write them
COMPRESSION_TABLES = {
    "weight": ("03_weight_pruning", "weight.csv"),
    "heads": ("04_head_pruning", "heads.csv"),
    "ffn": ("05_lowrank", "ffn.csv"),
    "distill": ("06_distillation", "distill.csv"),  # the students (distill) and the truncations (truncate)
    "combined": ("07_combined", "combined.csv"),
}
DEPTH_METHODS = ("distill", "truncate")  # one model per depth: every point is evaluated
# every method whose rows notebook 08 writes to the summary table (the references first)
STUDY_METHODS = ("fbank", "random-init", "dense", *COMPRESSION_TABLES, "truncate")
MAIN_VARIANTS = ("", "student", "truncation")  # variants that are a method's main trajectory, not an ablation


def model_name(method: str, density: float, variant: str | None = None) -> str:
    """The results-table name of a trajectory point: '<method>-<density to 4 digits>', an ablation's variant
    appended in brackets, e.g. 'heads-0.25', 'distill-0.5 (student, masked input)'."""
    name = f"{method}-{density:.4g}"
    if isinstance(variant, str) and variant not in MAIN_VARIANTS:
        name += f" ({variant})"
    return name


def spread(points: pd.DataFrame, k: int) -> pd.DataFrame:
    """At most k points of one trajectory, evenly spaced from its dense model to its sparsest point.

    With the n points sorted by density (densest first; the dense model, evaluated on its own, is position 0),
    the points at positions round(n * j / k), j = 1..k: k = 1 keeps the sparsest, k = 3 of 9 keeps the 3rd, 6th
    and 9th. k = 0 or k >= n keeps every point."""
    points = points.sort_values("density", ascending=False, ignore_index=True)
    n = len(points)
    if not k or n <= k:
        return points
    positions = sorted({int(n * j / k + 0.5) for j in range(1, k + 1)})  # half up, 1..n
    return points.iloc[[p - 1 for p in positions]].reset_index(drop=True)


def trajectory_points(results_root: Path, frame_rates) -> tuple[pd.DataFrame, list[str]]:
    """Every compressed point of notebooks 03-07's tables at `frame_rates` (each trajectory's point 0, the
    teacher, left out: it is the dense model), with columns `name` and `variant` ('' for a main trajectory);
    and one note per table that is missing (its notebook has not run)."""
    tables, missing = [], []
    for stem, file in COMPRESSION_TABLES.values():
        path = Path(results_root) / stem / file
        if not path.is_file():
            missing.append(f"{stem}/{file}")
            continue
        table = pd.read_csv(path)
        tables.append(table[table["frame_ms"].isin(list(frame_rates)) & (table["stage"] != "teacher")])
    points = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["method", "frame_ms", "density", "layers", "pretrain_loss", "checkpoint"])
    points["variant"] = points["variant"].fillna("") if "variant" in points else ""
    points["name"] = [model_name(m, d, v) for m, d, v in zip(points["method"], points["density"], points["variant"])]
    return points, missing


def points_to_evaluate(points: pd.DataFrame, points_per_trajectory: dict[int, int]) -> pd.DataFrame:
    """The points the sweep evaluates: per trajectory (method, frame rate, variant), `spread` over
    `points_per_trajectory[frame rate]` points (0: all); students and truncations all."""
    if points.empty:
        return points
    chosen = [group if method in DEPTH_METHODS else spread(group, points_per_trajectory[rate])
              for (method, rate, _), group in points.groupby(["method", "frame_ms", "variant"])]
    return pd.concat(chosen, ignore_index=True)
