"""The downstream notebook's (08) sweep: which models it evaluates (points of the compression trajectories and
the references), the names the results table gives them, the evaluations still to run, their results read back,
what they cost, and the study's sanity bar.

Notebooks 03-07 each write a trajectory table (one row per point: method, frame rate, density, checkpoint; the
distillation notebook's holds the students, method `distill`, and the truncations, method `truncate`). Of a
pruning trajectory, `spread` keeps a few points evenly spaced from the dense model to the sparsest point; the
students and truncations (`DEPTH_METHODS`) are each a model of a depth of its own and are all evaluated.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from compress_lib.downstream.evaluate import TASKS, EvaluationJob, finished_evaluation, summary_row
from compress_lib.downstream.upstream import RANDOM_INIT_PREFIX, load_upstream
from compress_lib.errors import CompressLibError
from compress_lib.files import display_path
from compress_lib.presets import study_scale

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


def check_points(value, preset: str) -> dict[int, int]:
    """Notebook 08's `max_points_per_method`: -1 -> the preset's points per trajectory (`STUDY_SCALES`), 0 -> all,
    k -> k at every frame rate. Returns frame rate -> points; one clear error for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise CompressLibError(f"max_points_per_method must be an integer >= -1 (0: all, -1: the preset's), "
                               f"got {value!r}")
    return dict(study_scale(preset).points_per_trajectory) if value == -1 else {10: value, 20: value}


def models_to_evaluate(teachers: dict, chosen: pd.DataFrame, work_path: Path) -> list[dict]:
    """What the sweep evaluates, as dicts (name, method, frame_ms, spec for `load_upstream`, density, layers,
    pretrain_loss): per frame rate the log-Mel features, the dense teacher's random-init twin and the teacher
    (`teachers`: frame rate -> `compress_lib.study.Teacher`), then the chosen trajectory points."""
    models = []
    for rate, teacher in teachers.items():
        ref = teacher.reference
        models += [
            dict(name="fbank", method="fbank", frame_ms=rate, spec="fbank", density=None, layers=0),
            dict(name="random-init", method="random-init", frame_ms=rate, spec=RANDOM_INIT_PREFIX + str(teacher.path),
                 density=1.0, layers=ref["structure"]["num_layers"]),
            dict(name="dense", method="dense", frame_ms=rate, spec=str(teacher.path), density=1.0,
                 layers=ref["structure"]["num_layers"], pretrain_loss=ref["pretrain_loss"]),
        ]
    for _, r in chosen.iterrows():
        models.append(dict(name=r["name"], method=r["method"], frame_ms=int(r["frame_ms"]),
                           spec=str(Path(work_path) / r["checkpoint"]), density=float(r["density"]),
                           layers=int(r["layers"]), pretrain_loss=r["pretrain_loss"]))
    return models


def evaluation_dir(work_path: Path, model: dict) -> Path:
    """<work>/downstream-<rate>ms/<name>: where a model's evaluations (pr.json, sid.json, states) live."""
    return Path(work_path) / f"downstream-{model['frame_ms']}ms" / model["name"].replace(" ", "_")


def evaluation_jobs(models: list[dict], work_path: Path, preset: str, seed: int,
                    hparams: dict) -> tuple[list, list[Path], list[EvaluationJob]]:
    """Each model as an upstream, its evaluation folder, and the evaluations still to run: a task whose finished
    result is of this very model file, preset, seed and probe settings is reused; one finished for anything else
    is stale and deleted (with its state) so that it runs again; an unfinished one resumes from its state."""
    upstreams, eval_dirs, jobs = [], [], []
    for m in models:
        fbank_rate = m["frame_ms"] if m["method"] == "fbank" else None
        upstream = load_upstream(m["spec"], frame_ms=fbank_rate, seed=seed, name=m["name"])
        eval_dir = evaluation_dir(work_path, m)
        upstreams.append(upstream)
        eval_dirs.append(eval_dir)
        for task in TASKS:
            if finished_evaluation(eval_dir, upstream.key, task, preset, seed, hparams[task]) is None:
                if (eval_dir / f"{task}.json").is_file():  # finished for another model file or probe setting
                    for stale in (eval_dir / f"{task}.json", eval_dir / f"{task}_state.pt"):
                        stale.unlink(missing_ok=True)
                jobs.append(EvaluationJob(task=task, spec=m["spec"], out_dir=str(eval_dir), name=m["name"],
                                          frame_ms=fbank_rate, hparams=hparams[task]))
    return upstreams, eval_dirs, jobs


def evaluation_results(models: list[dict], upstreams: list, eval_dirs: list[Path], preset: str, seed: int,
                       hparams: dict) -> tuple[list[dict], pd.DataFrame, list[dict], list[dict]]:
    """Read back every finished evaluation: the summary.csv cells of each (model, task) (`summary_row`: quality,
    and the model's size once), one row per model (with dev metrics and checkpoint), the seconds each evaluation
    recorded, and the probes' learnt layer weights."""
    cells_list, rows, costs, layer_weights = [], [], [], []
    for m, upstream, eval_dir in zip(models, upstreams, eval_dirs):
        row = {"model": m["name"], "method": m["method"], "frame_ms": m["frame_ms"], "density": m["density"],
               "layers": m["layers"]}
        for i, task in enumerate(TASKS):
            result = finished_evaluation(eval_dir, upstream.key, task, preset, seed, hparams[task])
            cells = summary_row(upstream, result, counts=(i == 0))
            cells.update(method=m["method"], density=m["density"])  # as in the trajectory
            if m.get("pretrain_loss") is not None and not pd.isna(m["pretrain_loss"]):
                cells["pretrain_loss"] = float(m["pretrain_loss"])
            cells_list.append(cells)
            row.update({k: v for k, v in cells.items() if k not in row or row[k] is None})
            row[f"{task}_dev"] = result["dev"]
            layer_weights += [{"model": m["name"], "method": m["method"], "frame_ms": m["frame_ms"], "task": task,
                               "layer": k, "weight": w} for k, w in enumerate(result.get("layer_weights") or [])]
            costs.append({"frame_ms": m["frame_ms"], "task": task, **result.get("seconds", {})})
        row["checkpoint"] = display_path(m["spec"]) if m["method"] != "fbank" else ""
        rows.append(row)
    return cells_list, pd.DataFrame(rows), costs, layer_weights


def cost_minutes(costs: list[dict]) -> pd.DataFrame:
    """CPU minutes of one core per frame rate and task (hidden states, probe, total) and the evaluations counted,
    from the seconds each evaluation recorded when it ran (this run or an earlier one)."""
    table = pd.DataFrame(costs)
    columns = [c for c in ("cpu_hidden_states", "cpu_probe", "cpu_total") if c in table]
    if not columns:
        return pd.DataFrame()
    minutes = (table.groupby(["frame_ms", "task"])[columns].sum() / 60).round(1)
    minutes.insert(0, "evaluations", table.dropna(subset=["cpu_total"]).groupby(["frame_ms", "task"]).size())
    return minutes


PER_MARGIN = 5.0  # points of PER the dense model must beat random-init and fbank by (the study's sanity bar)


def sanity_checks(results: pd.DataFrame, frame_rates) -> pd.DataFrame:
    """Per frame rate, the study's bar for meaningful results: the dense model beats its random-init twin and the
    log-Mel features on PER by at least PER_MARGIN points, and its SID accuracy is at least log-Mel's. Columns: the
    three models' numbers, the margins and `holds`."""
    by_model = results.set_index(["frame_ms", "method"])
    rows = []
    for rate in frame_rates:
        dense, rand, fbank = (by_model.loc[(rate, m)] for m in ("dense", "random-init", "fbank"))
        rows.append({
            "frame_ms": rate, "dense PER": dense["per"], "random-init PER": rand["per"], "fbank PER": fbank["per"],
            "PER margin over random-init": rand["per"] - dense["per"],
            "PER margin over fbank": fbank["per"] - dense["per"],
            "dense SID": dense["sid_accuracy"], "fbank SID": fbank["sid_accuracy"],
            "SID margin over fbank": dense["sid_accuracy"] - fbank["sid_accuracy"],
        })
    checks = pd.DataFrame(rows).set_index("frame_ms")
    checks["holds"] = ((checks["PER margin over random-init"] >= PER_MARGIN)
                       & (checks["PER margin over fbank"] >= PER_MARGIN) & (checks["SID margin over fbank"] >= 0))
    return checks
