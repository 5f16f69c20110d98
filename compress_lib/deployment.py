"""Is smaller faster where models are deployed? The deployment table and its verdicts (notebook 14).

The deployment notebook times every model of the study in three runtimes (`compress_lib.efficiency.deploy`):
eager PyTorch (as the rest of the study), ONNX Runtime (ORT) on the fp32 export, and ORT on its int8 dynamic
quantization; and it evaluates a few int8 models downstream. It owns one table, `14_deployment/deployment.csv`,
one row per (model, frame rate, runtime):

    model, method, density, frame_ms    as in the study's summary table (`compress_lib.results`)
    runtime                             eager, onnxruntime or onnxruntime-int8
    params, macs_per_second             non-zero parameters (masked weights as masked) and MACs per second of
                                        the model, as in the summary table: the same in every runtime (int8
                                        runs the same MACs, in int8)
    model_bytes                         eager: bytes of the parameters in memory; ORT: the ONNX file's size
    real_time_factor (+ _q1, _q3)       median (quartiles) of the rounds timed in turns, every runtime together
    ratio_to_eager                      median over rounds of this runtime's time / eager's
    max_abs_difference                  ORT fp32 only: its hidden states against PyTorch's (relative)
    per, sid_accuracy                   eager: the study's (notebook 08); int8: measured on the int8 model
                                        (probes trained on its hidden states); ORT fp32: empty, as its hidden
                                        states equal eager's within `deploy.ORT_TOLERANCE`

The verdicts judge three claims of deployment folklore on this table, with the study's tolerances
(`compress_lib.verdicts`): int8 speeds CPU inference up by at least 1.5x at equal quality; the savings of
structured compression carry over to ORT; the runtime ranking of the models is the same in eager PyTorch and
ORT. `runtime_picture` re-reads the paper's runtime findings (head vs FFN pruning at equal MACs, depth vs width,
weight pruning's lack of speed-up) in each runtime.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from compress_lib.downstream.evaluate import (
    METRIC as TASK_METRIC,
    TASKS,
    EvaluationJob,
    evaluate_many,
    finished_evaluation,
    probe_hparams,
)
from compress_lib.downstream.upstream import INT8_PREFIX, RANDOM_INIT_PREFIX, int8_key, load_upstream
from compress_lib.efficiency.deploy import INT8_RUNTIME as INT8, RUNTIMES, model_bytes, runtime_real_time_factors
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.files import resolve_path
from compress_lib.verdicts import (
    METRIC,
    PER_TOLERANCE,
    RTF_TOLERANCE,
    SID_TOLERANCE,
    VERDICT_COLUMNS,
    heads_ffn_runtime_ratio,
    keeps,
    rank_correlation,
    verdict_row,
)

DEPLOYMENT_COLUMNS = (
    "model", "method", "density", "frame_ms", "runtime", "params", "macs_per_second", "model_bytes",
    "real_time_factor", "real_time_factor_q1", "real_time_factor_q3", "ratio_to_eager", "max_abs_difference",
    "per", "sid_accuracy", "threads",
)  # fmt: skip
DEPLOYED_METHODS = ("dense", "weight", "heads", "ffn", "distill", "truncate", "combined")
INT8_QUALITY_METHODS = ("dense", "heads", "ffn", "distill", "combined")  # int8 evaluated downstream: one model each
STRUCTURED_METHODS = ("heads", "ffn", "distill", "truncate", "combined")  # they remove computation physically
DEPTH_METHODS, WIDTH_METHODS = ("distill", "truncate"), ("heads", "ffn")
INT8_MIN_SPEEDUP = 1.5  # the claim judged: int8 is at least this much faster than fp32 in the same runtime
RANKING_MIN_CORRELATION = 0.9  # rank correlation of the models' runtimes that counts as "the same ranking"


def check_methods(text: str) -> tuple[str, ...]:
    """The methods of a comma-separated list (empty: all of DEPLOYED_METHODS), each checked."""
    if not isinstance(text, str):
        raise CompressLibError(f"methods must be a comma-separated list of methods, got {text!r}")
    names = [m.strip() for m in text.split(",") if m.strip()] or list(DEPLOYED_METHODS)
    return tuple(check_choice(m, DEPLOYED_METHODS, "method to deploy") for m in names)


def models_to_deploy(summary: pd.DataFrame, checkpoints: pd.DataFrame, frame_rates=(10, 20),
                     methods=DEPLOYED_METHODS) -> pd.DataFrame:
    """The study's models to deploy: main rows (no ablations) of `methods` at `frame_rates` with a real-time factor
    in the summary table, joined with their checkpoint (from notebook 08's `downstream.csv`, column `checkpoint`);
    rows without a checkpoint are left out. Sorted by frame rate, method (in DEPLOYED_METHODS order), density."""
    table = summary[summary["method"].isin(methods) & summary["frame_ms"].isin(frame_rates)
                    & summary["real_time_factor"].notna() & ~summary["model"].astype(str).str.contains(" (", regex=False)]
    table = table.merge(checkpoints[["model", "frame_ms", "checkpoint"]], on=["model", "frame_ms"], how="inner")
    table = table[table["checkpoint"].astype(str).str.len() > 0]
    order = table["method"].map({m: i for i, m in enumerate(DEPLOYED_METHODS)})
    return (table.assign(_order=order).sort_values(["frame_ms", "_order", "density"], ascending=[True, True, False],
                                                   kind="stable").drop(columns="_order").reset_index(drop=True))


def checkpoint_on_disk(spec) -> str | None:
    """A checkpoint of notebook 08's table (a path from the repository root) as `load_upstream` takes it, or None
    when it is not on disk (or is a random-init twin, which is no deployed model)."""
    if not isinstance(spec, str) or not spec or spec.startswith(RANDOM_INIT_PREFIX):
        return None
    path = resolve_path(spec)
    return str(path) if path.is_file() else None


def int8_quality_models(models: pd.DataFrame, frame_ms: int) -> pd.DataFrame:
    """The models whose int8 version is evaluated downstream at `frame_ms`: the dense model and the sparsest point
    of each other method of INT8_QUALITY_METHODS (the one that compresses most)."""
    rows = models[(models["frame_ms"] == frame_ms) & models["method"].isin(INT8_QUALITY_METHODS)]
    picked = [group.sort_values("density", kind="stable").iloc[0] for _, group in rows.groupby("method", sort=False)]
    return pd.DataFrame(picked).reset_index(drop=True) if picked else rows.iloc[0:0]


def time_runtimes(models: pd.DataFrame, seconds: float, warmup: int, repeats: int, threads: int = 1) -> pd.DataFrame:
    """The deployment table's timed rows: every model of `models` (`models_to_deploy`) in every runtime, all
    models of a frame rate and all runtimes timed in turns (`deploy.runtime_real_time_factors`), the ONNX files
    in a temporary folder. Quality columns: the summary table's for eager rows, empty otherwise."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="compress-lib-onnx-") as folder:
        for frame_ms, group in models.groupby("frame_ms"):
            group = group.reset_index(drop=True)
            upstreams = [load_upstream(spec, name=name) for spec, name in zip(group["checkpoint"], group["model"])]
            measured = runtime_real_time_factors([(u.model, u.num_layers) for u in upstreams],
                                                 Path(folder) / f"{int(frame_ms)}ms", RUNTIMES, seconds,
                                                 repeats=repeats, warmup=warmup, threads=threads)
            for m in measured:
                model, upstream, eager = group.iloc[m["index"]], upstreams[m["index"]], m["runtime"] == "eager"
                rows.append({
                    "model": model["model"], "method": model["method"], "density": model["density"],
                    "frame_ms": int(frame_ms), "runtime": m["runtime"], "params": model["nonzero_params"],
                    "macs_per_second": model["macs_per_second"],
                    "model_bytes": model_bytes(upstream.model, upstream.num_layers) if eager else m["file_bytes"],
                    "real_time_factor": m["median"], "real_time_factor_q1": m["quartiles"][0],
                    "real_time_factor_q3": m["quartiles"][1], "ratio_to_eager": m["ratio_to_eager"],
                    "max_abs_difference": m["max_abs_difference"],
                    "per": model["per"] if eager else None, "sid_accuracy": model["sid_accuracy"] if eager else None,
                    "threads": m["threads"],
                })
    return deployment_frame(rows)


def with_int8_quality(table: pd.DataFrame, int8: pd.DataFrame) -> pd.DataFrame:
    """The deployment table with the int8 rows' PER and SID accuracy from `evaluate_int8`'s rows."""
    table = deployment_frame(table)
    for row in int8.itertuples():
        where = (table["model"] == row.model) & (table["frame_ms"] == row.frame_ms) & (table["runtime"] == INT8)
        table.loc[where, ["per", "sid_accuracy"]] = [row.per, row.sid_accuracy]
    return table


def evaluate_int8(models: pd.DataFrame, work_dir, data_dir, preset: str, seed: int = 0, processes: int = 1,
                  cache_dir=None) -> pd.DataFrame:
    """PR and SID of the int8 version of each model (rows with model, frame_ms, checkpoint): the probes of the
    preset trained on the hidden states ONNX Runtime computes with int8 weights (`load_upstream("int8:...")`),
    exactly as notebook 08 evaluates the fp32 models. Results go to `work_dir/int8-<rate>ms/<model>/`; a finished
    evaluation of the same model file, preset, seed and probe settings is read, not rerun. Returns one row per
    model: model, frame_ms, per, sid_accuracy and the CPU seconds the evaluations took (cpu_s)."""
    hparams = probe_hparams(preset)
    plan, jobs = [], []
    for row in models.itertuples():
        key = int8_key(load_upstream(row.checkpoint))
        out_dir = Path(work_dir) / f"int8-{int(row.frame_ms)}ms" / str(row.model).replace(" ", "_")
        plan.append((row, key, out_dir))
        for task in TASKS:
            if finished_evaluation(out_dir, key, task, preset, seed, hparams[task]) is None:
                for stale in (out_dir / f"{task}.json", out_dir / f"{task}_state.pt"):  # another model's, or settings
                    stale.unlink(missing_ok=True)
                jobs.append(EvaluationJob(task=task, spec=INT8_PREFIX + row.checkpoint, out_dir=str(out_dir),
                                          name=f"{row.model} (int8)", hparams=hparams[task]))
    evaluate_many(jobs, data_dir, preset, cache_dir=cache_dir, seed=seed, processes=processes, progress=False)
    out = []
    for row, key, out_dir in plan:
        results = {task: finished_evaluation(out_dir, key, task, preset, seed, hparams[task]) for task in TASKS}
        out.append({"model": row.model, "frame_ms": int(row.frame_ms),
                    **{TASK_METRIC[task]: round(r["test"], 4) for task, r in results.items()},
                    "cpu_s": sum(r.get("seconds", {}).get("cpu_total", 0.0) for r in results.values())})
    return pd.DataFrame(out, columns=["model", "frame_ms", "per", "sid_accuracy", "cpu_s"])


def deployment_frame(rows) -> pd.DataFrame:
    """Rows (dicts or a DataFrame) as a DataFrame with exactly DEPLOYMENT_COLUMNS, numbers as numbers."""
    table = pd.DataFrame(rows).reindex(columns=list(DEPLOYMENT_COLUMNS))
    numeric = [c for c in DEPLOYMENT_COLUMNS if c not in ("model", "method", "runtime")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table


def runtime_table(table: pd.DataFrame, runtime: str) -> pd.DataFrame:
    """The rows of one runtime, shaped like the study's summary table (its `real_time_factor` is that runtime's;
    `nonzero_params` is `params`), so that the study's verdict rules can judge it."""
    rows = deployment_frame(table)
    rows = rows[rows["runtime"] == runtime].copy()
    rows["nonzero_params"] = rows["params"]
    return rows.drop(columns=["runtime"]).reset_index(drop=True)


def relative_runtimes(table: pd.DataFrame, frame_ms: int) -> pd.DataFrame:
    """Per model (rows) and runtime (columns): real-time factor / the dense model's in the same runtime."""
    rows = deployment_frame(table)
    rows = rows[rows["frame_ms"] == frame_ms]
    wide = rows.pivot_table(index=["model", "method", "density"], columns="runtime", values="real_time_factor")
    dense = rows[rows["method"] == "dense"].set_index("runtime")["real_time_factor"]
    wide = wide.reindex(columns=[r for r in RUNTIMES if r in wide.columns])
    return (wide / dense.reindex(wide.columns)).reset_index()


def figure_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The deployment table with `relative_runtime` (real-time factor / the dense model's in eager PyTorch),
    `macs_fraction` and `bytes_fraction` (MACs and model bytes / the dense model's, eager) at each frame rate;
    rates without a timed dense model are left out."""
    rows = deployment_frame(table)
    dense = rows[(rows["method"] == "dense") & (rows["runtime"] == "eager")].set_index("frame_ms")
    rows = rows[rows["frame_ms"].isin(dense.index)].copy()
    reference = dense.reindex(rows["frame_ms"])
    for column, fraction in (("real_time_factor", "relative_runtime"), ("macs_per_second", "macs_fraction"),
                             ("model_bytes", "bytes_fraction")):
        rows[fraction] = rows[column].to_numpy() / reference[column].to_numpy()
    return rows.reset_index(drop=True)


def quality_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model evaluated in int8 (index: model, frame rate): its PER and SID accuracy in fp32 (eager) and
    int8, the differences (Δ, int8 - fp32, points), int8's speed-up over ORT fp32 and its bytes / the fp32 model's,
    rounded for reading."""
    rows = deployment_frame(table)
    key = ["model", "frame_ms"]
    int8 = rows[(rows["runtime"] == INT8)].dropna(subset=["per", "sid_accuracy"]).set_index(key)
    fp32 = rows[rows["runtime"] == "eager"].set_index(key).reindex(int8.index)
    ort = rows[rows["runtime"] == "onnxruntime"].set_index(key).reindex(int8.index)
    out = pd.DataFrame({
        "PER": fp32["per"], "PER int8": int8["per"], "ΔPER": int8["per"] - fp32["per"],
        "SID": fp32["sid_accuracy"], "SID int8": int8["sid_accuracy"], "ΔSID": int8["sid_accuracy"] - fp32["sid_accuracy"],
        "speed-up": ort["real_time_factor"] / int8["real_time_factor"],
        "bytes": int8["model_bytes"] / fp32["model_bytes"],
    })
    return out.round(2)


def geometric_mean(values) -> float:
    values = np.asarray(list(values), dtype=float)
    return float(math.exp(np.mean(np.log(values)))) if len(values) else float("nan")


# -- verdicts ------------------------------------------------------------------------------------------------------
def int8_speeds_up(table: pd.DataFrame, frame_ms: int, min_speedup: float = INT8_MIN_SPEEDUP,
                   per_tolerance: float = PER_TOLERANCE, sid_tolerance: float = SID_TOLERANCE) -> dict:
    """int8 speeds up CPU inference by at least `min_speedup` at equal quality.

    Speed-up: each model's ORT fp32 real-time factor / its ORT int8 one (the same runtime, so only the weights'
    type differs); their geometric mean over the models timed in both. Quality: every int8 model evaluated
    downstream keeps PR and SID against the same model in fp32 (the study's `keeps`, with its tolerances).
    Reproduced: fast enough and quality kept; different: one of the two; not reproduced: neither. Not measured
    without models timed in both, or without an int8 model evaluated downstream at this frame rate.
    """
    key, finding = "int8", f"int8 speeds up CPU inference by at least {min_speedup:g}x at equal quality"
    claim = "dynamic int8 quantization: weights 4x smaller, int8 matrix products (ONNX Runtime on CPU)"
    rows = deployment_frame(table)
    rows = rows[rows["frame_ms"] == frame_ms]
    rtf = rows.pivot_table(index="model", columns="runtime", values="real_time_factor")
    if not {"onnxruntime", INT8} <= set(rtf.columns) or rtf[["onnxruntime", INT8]].dropna().empty:
        return verdict_row(key, finding, claim, f"no model timed in ORT fp32 and int8 at {frame_ms:g} ms",
                           "not measured")
    pairs = rtf[["onnxruntime", INT8]].dropna()
    speedups = pairs["onnxruntime"] / pairs[INT8]
    speedup = geometric_mean(speedups)
    fast = speedup >= min_speedup
    eager = rows[rows["runtime"] == "eager"].set_index("model")
    int8 = rows[(rows["runtime"] == INT8)].dropna(subset=list(METRIC.values())).set_index("model")
    int8 = int8[int8.index.isin(eager.dropna(subset=list(METRIC.values())).index)]
    speed_text = (f"ORT int8 {speedup:.2f}x faster than ORT fp32 (geometric mean of {len(speedups)} models, "
                  f"{speedups.min():.2f}-{speedups.max():.2f})")
    if int8.empty:
        return verdict_row(key, finding, claim, speed_text + f"; no int8 model evaluated downstream at {frame_ms:g} ms",
                           "not measured")
    tol = dict(per_tolerance=per_tolerance, sid_tolerance=sid_tolerance)
    losses = []
    for model, row in int8.iterrows():
        for task, column in METRIC.items():
            if not keeps(row[column], eager.loc[model, column], task, **tol):
                losses.append(f"{model} {task} ({eager.loc[model, column]:.1f} -> {row[column]:.1f})")
    kept = not losses
    quality_text = (f"all {len(int8)} int8 models evaluated keep PR and SID" if kept
                    else "int8 loses " + ", ".join(losses))
    verdict = ("reproduced" if fast and kept else "not reproduced" if not (fast or kept) else "different")
    return verdict_row(key, finding, claim, f"{speed_text}; {quality_text}", verdict)


def structured_savings_carry_over(table: pd.DataFrame, frame_ms: int, rtf_tolerance: float = RTF_TOLERANCE) -> dict:
    """The runtime savings of structured compression carry over from eager PyTorch to ONNX Runtime.

    For the most compressed model of each method of STRUCTURED_METHODS, its real-time factor relative to the
    dense model's is taken in each runtime (eager, ORT fp32). A saving *holds* when the ORT fraction is at most
    the eager one times (1 + rtf_tolerance); it *weakens* when it is higher but still below 1 - rtf_tolerance;
    it *vanishes* otherwise. Methods without an eager saving (fraction >= 1 - rtf_tolerance) have none to carry.
    Reproduced: every saving holds; different: some weaken, none vanishes; not reproduced: one vanishes.
    """
    key, finding = "ort", "structured savings carry over to ONNX Runtime"
    claim = "an optimising runtime fuses small operators; savings measured in eager PyTorch may shrink"
    relative = relative_runtimes(table, frame_ms)
    if not {"eager", "onnxruntime"} <= set(relative.columns) or relative.empty:
        return verdict_row(key, finding, claim, f"no model timed in eager and ORT at {frame_ms:g} ms", "not measured")
    outcome = {}
    for method in STRUCTURED_METHODS:
        rows = relative[relative["method"] == method].dropna(subset=["eager", "onnxruntime"])
        if rows.empty:
            continue
        point = rows.sort_values("density", kind="stable").iloc[0]
        eager, ort = point["eager"], point["onnxruntime"]
        if eager >= 1 - rtf_tolerance:
            state = "no saving in eager"
        elif ort <= eager * (1 + rtf_tolerance):
            state = "holds"
        elif ort < 1 - rtf_tolerance:
            state = "weakens"
        else:
            state = "vanishes"
        outcome[method] = (state, f"{point['model']} x{eager:.2f} eager, x{ort:.2f} ORT: {state}")
    judged = [s for s, _ in outcome.values() if s != "no saving in eager"]
    if not judged:
        return verdict_row(key, finding, claim, f"no structured model saves runtime in eager PyTorch at {frame_ms:g} ms",
                           "not measured")
    ours = "runtime / dense in each runtime: " + "; ".join(text for _, text in outcome.values())
    verdict = ("not reproduced" if "vanishes" in judged else "different" if "weakens" in judged else "reproduced")
    return verdict_row(key, finding, claim, ours, verdict)


def runtime_ranking_holds(table: pd.DataFrame, frame_ms: int,
                          min_correlation: float = RANKING_MIN_CORRELATION) -> dict:
    """The models rank the same by runtime in eager PyTorch and in ONNX Runtime.

    Spearman's rank correlation between the models' eager real-time factors and their ORT fp32 ones, and
    between eager and ORT int8 (models timed in all three). Reproduced: both at least `min_correlation`;
    different: one is; not reproduced: neither. Not measured with fewer than 3 models.
    """
    key, finding = "ranking", "the ranking of models by runtime is the same in eager PyTorch and ONNX Runtime"
    claim = "compression papers time eager PyTorch (or a GPU) and assume the ordering transfers"
    rows = deployment_frame(table)
    rtf = rows[rows["frame_ms"] == frame_ms].pivot_table(index="model", columns="runtime", values="real_time_factor")
    needed = ["eager", "onnxruntime", INT8]
    if not set(needed) <= set(rtf.columns) or len(rtf[needed].dropna()) < 3:
        return verdict_row(key, finding, claim, f"fewer than 3 models timed in all three runtimes at {frame_ms:g} ms",
                           "not measured")
    rtf = rtf[needed].dropna()
    rho = {r: rank_correlation(rtf["eager"], rtf[r]) for r in ("onnxruntime", INT8)}
    same = [r for r, value in rho.items() if value >= min_correlation]
    ours = (f"rank correlation of {len(rtf)} models' real-time factors, eager vs ORT fp32 {rho['onnxruntime']:.2f}, "
            f"eager vs ORT int8 {rho[INT8]:.2f}")
    verdict = "reproduced" if len(same) == 2 else "different" if same else "not reproduced"
    return verdict_row(key, finding, claim, ours, verdict)


def deployment_verdicts(table: pd.DataFrame, frame_ms: int) -> pd.DataFrame:
    """The three deployment verdicts at `frame_ms`, columns VERDICT_COLUMNS (the `paper` column holds the claim
    judged, which is no finding of the paper)."""
    rows = [int8_speeds_up(table, frame_ms), structured_savings_carry_over(table, frame_ms),
            runtime_ranking_holds(table, frame_ms)]
    return pd.DataFrame([{"frame_ms": frame_ms, **row} for row in rows], columns=list(VERDICT_COLUMNS))


def runtime_picture(table: pd.DataFrame, frame_ms: int) -> pd.DataFrame:
    """The paper's runtime picture in each runtime, one row per runtime:

    heads_vs_ffn     head-pruned models' real-time factor / FFN pruning's at equal MACs (geometric mean; below 1:
                     head pruning faster), as finding f (`verdicts.heads_ffn_runtime_ratio`)
    depth_vs_width   runtime saved per MAC saved, shallower models (distill, truncate) / narrower ones (heads,
                     ffn): the geometric mean of (runtime fraction / MACs fraction) of each group, depth over
                     width (below 1: removing layers buys more time per MAC than thinning them)
    weight_pruning   the sparsest weight-pruned model's runtime / the dense model's (1: masks buy nothing)
    """
    relative = relative_runtimes(table, frame_ms)
    rows = deployment_frame(table)
    rows = rows[rows["frame_ms"] == frame_ms]
    dense_macs = rows.loc[rows["method"] == "dense", "macs_per_second"]
    macs = rows.drop_duplicates("model").set_index("model")["macs_per_second"]
    out = []
    for runtime in [r for r in RUNTIMES if r in relative.columns]:
        per_mac = {}
        if len(dense_macs):
            fractions = relative.set_index("model")[runtime] / (macs / float(dense_macs.iloc[0]))
            for group, methods in (("depth", DEPTH_METHODS), ("width", WIDTH_METHODS)):
                names = relative.loc[relative["method"].isin(methods), "model"]
                per_mac[group] = geometric_mean(fractions.reindex(names).dropna())
        weight = relative[relative["method"] == "weight"].dropna(subset=[runtime]).sort_values("density")
        out.append({
            "frame_ms": frame_ms, "runtime": runtime,
            "heads_vs_ffn": heads_ffn_runtime_ratio(runtime_table(rows, runtime), frame_ms),
            "depth_vs_width": per_mac.get("depth", np.nan) / per_mac.get("width", np.nan) if per_mac else np.nan,
            "weight_pruning": float(weight[runtime].iloc[0]) if len(weight) else np.nan,
        })
    return pd.DataFrame(out, columns=["frame_ms", "runtime", "heads_vs_ffn", "depth_vs_width", "weight_pruning"])
