"""The paper's findings, judged on the study's results table (`summary.csv`, see `compress_lib.results`).

Every finding is a small pure function of the table and one frame rate that returns one row:

    id        a short key (a-PR, a-SID, b-PR, b-SID, c, d, e, f, g)
    finding   what the paper claims, in a few words
    paper     what the paper found (its values, cited from the paper; never ours)
    ours      our evidence, with the numbers computed from the table
    verdict   one of VERDICTS:
                reproduced      the finding holds in our table under the rule of its function
                not reproduced  it does not hold: the effect is absent, or goes the other way
                different       part of it holds and part does not (each function says which parts)
                not measured    the rows the rule needs are not in the table; nothing is guessed

`all_verdicts(summary, frame_ms)` returns all of them as a DataFrame.

What "keeps a task" means. A model keeps phone recognition (PR) while its PER is at most `per_tolerance` points
above the dense model's, and speaker identification (SID) while its accuracy is at most `sid_tolerance` points
below the dense model's. The defaults respect the noise of our test sets:

- SID is scored on 600 test utterances (60 speakers x 10): the binomial standard error of an accuracy p is
  sqrt(p (1 - p) / 600), at most 2.0 points (p = 50%), and that of the difference of two models up to about 2.9
  points. The default SID_TOLERANCE = 3 points is about 1.5 standard errors of one accuracy, one of a difference.
- PR is scored on about 140 test utterances (a few thousand phones): the binomial standard error of the PER is
  under a point, but errors cluster by utterance and by speaker (6 test speakers), so the default
  PER_TOLERANCE = 2 points.
- Real-time factors are medians of a few timed runs on a shared 2-core CPU: differences under RTF_TOLERANCE
  = 10% (relative) are not trusted.
- Densities are compared with the paper's within DENSITY_TOLERANCE = 0.05 (absolute): the study evaluates a
  handful of points per trajectory, not the paper's every step.

Which rows are used: those of the given frame rate; `method` names the compression (dense, weight, heads, ffn,
distill, truncate, combined); `density` is what each method prunes (weight: fraction of the prunable weights
kept; heads: of the heads; ffn: of the FFN units; distill and truncate: layers / the teacher's; combined:
layer parameters / the teacher's). Ablations (a model name with a parenthesised variant, e.g. notebook 06's
"distill-0.5 (student, masked input)") are left out: each method's main trajectory is judged. Cells may be
strings or empty (as `results.read_summary` returns them); they are converted to numbers, empty ones to NaN,
and a row lacking a value a rule needs is not used by that rule.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from compress_lib.results import summary_frame

VERDICTS = ("reproduced", "not reproduced", "different", "not measured")
VERDICT_COLUMNS = ("frame_ms", "id", "finding", "paper", "ours", "verdict")

PER_TOLERANCE = 2.0  # PER points above the dense model's that still "keep" PR
SID_TOLERANCE = 3.0  # SID accuracy points below the dense model's that still "keep" SID
DENSITY_TOLERANCE = 0.05  # absolute, when a density is compared with the paper's
RTF_TOLERANCE = 0.10  # relative, when two real-time factors are compared

METRIC = {"PR": "per", "SID": "sid_accuracy"}  # task -> its column
# Cited from the paper (section V-A): the lowest density that still keeps each task.
PAPER_KEPT_DENSITY = {("weight", "PR"): 0.40, ("weight", "SID"): 0.20, ("heads", "PR"): 1 / 3, ("heads", "SID"): 1 / 3}
RUNTIME_RIVALS = ("dense", "weight", "heads", "ffn", "truncate")  # what distillation's tradeoff is set against


# -- reading the table -----------------------------------------------------------------------------------------
def rows_at(summary: pd.DataFrame, frame_ms: int) -> pd.DataFrame:
    """The main rows of one frame rate (from a DataFrame or `read_summary`'s list of rows), numeric columns as
    numbers (empty cells NaN), ablations left out."""
    table = summary_frame(summary)  # "" and junk -> NaN
    table["model"] = table["model"].fillna("").astype(str)
    table["method"] = table["method"].fillna("").astype(str)
    ablation = table["model"].str.contains(" (", regex=False)
    return table[(table["frame_ms"] == frame_ms) & ~ablation].reset_index(drop=True)


def method_rows(table: pd.DataFrame, method: str, *needed: str) -> pd.DataFrame:
    """The rows of `method` with a value in every `needed` column, densest first."""
    rows = table[table["method"] == method].dropna(subset=list(needed))
    return rows.sort_values("density", ascending=False, kind="stable").reset_index(drop=True)


def dense_row(table: pd.DataFrame, *needed: str) -> pd.Series | None:
    """The dense (unpruned) model of the table with the `needed` values, or None."""
    rows = method_rows(table, "dense", *needed)
    return rows.iloc[0] if len(rows) else None


# -- the rules' building blocks --------------------------------------------------------------------------------
def loss(value: float, reference: float, task: str) -> float:
    """How many points worse than `reference` a model is on `task` (negative: better)."""
    return value - reference if task == "PR" else reference - value


def keeps(value: float, reference: float, task: str, per_tolerance: float = PER_TOLERANCE,
          sid_tolerance: float = SID_TOLERANCE) -> bool:
    """PR: PER <= reference + per_tolerance. SID: accuracy >= reference - sid_tolerance."""
    return loss(value, reference, task) <= (per_tolerance if task == "PR" else sid_tolerance)


def kept_down_to(densities, values, reference: float, task: str, **tolerances) -> tuple[float | None, float | None]:
    """(lowest density kept, first density lost), walking a trajectory from dense to sparse.

    The task is kept down to the last model before the first one that loses it (None: the densest model already
    loses it); the first density lost is None when every model keeps it.
    """
    lowest = None
    for density, value in zip(densities, values):
        if not keeps(value, reference, task, **tolerances):
            return lowest, density
        lowest = density
    return lowest, None


def clearly_dominates(a: pd.Series, b: pd.Series, per_tolerance: float, rtf_tolerance: float) -> bool:
    """Model a beats model b on (real-time factor, PER): no worse on either (within tolerance) and clearly
    better on one (faster by more than rtf_tolerance, relative, or PER lower by more than per_tolerance)."""
    a_rtf, b_rtf = a["real_time_factor"], b["real_time_factor"]
    no_worse = a_rtf <= b_rtf * (1 + rtf_tolerance) and a["per"] <= b["per"] + per_tolerance
    better = a_rtf < b_rtf * (1 - rtf_tolerance) or a["per"] < b["per"] - per_tolerance
    return bool(no_worse and better)


def combine(parts: list[bool]) -> str:
    """All parts hold: reproduced; none: not reproduced; some: different."""
    return "reproduced" if all(parts) else "not reproduced" if not any(parts) else "different"


def verdict_row(key: str, finding: str, paper: str, ours: str, verdict: str) -> dict:
    assert verdict in VERDICTS, verdict
    return {"id": key, "finding": finding, "paper": paper, "ours": ours, "verdict": verdict}


def fmt(x: float) -> str:
    """A density or other fraction, briefly: 0.333, 0.3, 0.05."""
    return f"{x:.3g}"


def scores(row: pd.Series) -> str:
    """'PER 41.2%, SID 63.0%' of a model."""
    return f"PER {row['per']:.1f}%, SID {row['sid_accuracy']:.1f}%"


# -- a and b: how far weight and head pruning keep each task ---------------------------------------------------
def pruning_keeps(summary: pd.DataFrame, frame_ms: int, method: str, task: str,
                  per_tolerance: float = PER_TOLERANCE, sid_tolerance: float = SID_TOLERANCE,
                  density_tolerance: float = DENSITY_TOLERANCE) -> dict:
    """Does `method` (weight or heads) keep `task` (PR or SID) down to the paper's density?

    Rule: walk the method's models from dense to sparse; the task is kept down to the last model before the
    first that loses it (`kept_down_to`). Reproduced when that density is at most the paper's + density_tolerance.
    Not reproduced when the task is lost above that. When every evaluated model keeps the task, the evidence
    reaches only the lowest evaluated density: reproduced if that is at most the paper's + density_tolerance,
    else not measured (our schedule stopped before the paper's density; e.g. weight pruning at 30%).
    """
    what = {"weight": "weight pruning", "heads": "head pruning"}[method]
    pruned = {"weight": "weight-pruned", "heads": "head-pruned"}[method]
    unit = {"weight": "of the prunable weights", "heads": "of the heads"}[method]
    paper_density = PAPER_KEPT_DENSITY[method, task]
    key, finding = f"{'a' if method == 'weight' else 'b'}-{task}", f"{what} keeps {task} down to low density"
    paper = f"{task} kept down to about {paper_density:.0%} {unit}"
    metric = METRIC[task]
    table = rows_at(summary, frame_ms)
    dense, rows = dense_row(table, metric), method_rows(table, method, "density", metric)
    if dense is None or rows.empty:
        missing = "dense model" if dense is None else f"{pruned} model"
        return verdict_row(key, finding, paper, f"no {missing} with a {task} result at {frame_ms:g} ms", "not measured")

    tol = dict(per_tolerance=per_tolerance, sid_tolerance=sid_tolerance)
    lowest, lost = kept_down_to(rows["density"], rows[metric], dense[metric], task, **tol)
    by_density = dict(zip(rows["density"], rows[metric]))
    base = f"dense {'PER' if task == 'PR' else 'SID accuracy'} {dense[metric]:.1f}%"
    reaches = lowest is not None and lowest <= paper_density + density_tolerance
    if lost is None:
        ours = (f"kept by every evaluated model, at least down to density {fmt(lowest)} ({by_density[lowest]:.1f}%; "
                f"{base})")
        if not reaches:
            ours += f"; the paper's {fmt(paper_density)} was not evaluated"
        return verdict_row(key, finding, paper, ours, "reproduced" if reaches else "not measured")
    if lowest is None:
        ours = f"lost already at density {fmt(lost)}, the densest evaluated ({by_density[lost]:.1f}%; {base})"
    else:
        ours = (f"kept down to density {fmt(lowest)} ({by_density[lowest]:.1f}%), lost at {fmt(lost)} "
                f"({by_density[lost]:.1f}%); {base}")
    return verdict_row(key, finding, paper, ours, "reproduced" if reaches else "not reproduced")


def weight_pruning_keeps(summary: pd.DataFrame, frame_ms: int, task: str, **tolerances) -> dict:
    """Finding a (per task): weight pruning keeps PR down to about 40% density, SID to 20% (`pruning_keeps`)."""
    return pruning_keeps(summary, frame_ms, "weight", task, **tolerances)


def head_pruning_keeps(summary: pd.DataFrame, frame_ms: int, task: str, **tolerances) -> dict:
    """Finding b (per task): head pruning keeps PR and SID down to about 33% of the heads (`pruning_keeps`)."""
    return pruning_keeps(summary, frame_ms, "heads", task, **tolerances)


# -- c: FFN pruning ----------------------------------------------------------------------------------------------
def ffn_pruning_degrades(summary: pd.DataFrame, frame_ms: int, per_tolerance: float = PER_TOLERANCE,
                         sid_tolerance: float = SID_TOLERANCE) -> dict:
    """Finding c: FFN (low-rank) pruning degrades as soon as it starts, SID more than PR.

    Two parts. (1) Degrades from the start: unlike weight and head pruning, no FFN-pruned model is better than
    the dense model by more than the tolerance on either task, and the sparsest one loses at least one task.
    (2) SID more than PR: at the sparsest FFN-pruned model, SID's loss exceeds PR's, each measured in units of
    its tolerance (loss / sid_tolerance > loss / per_tolerance), which puts both in units of what we resolve.
    Both hold: reproduced; neither: not reproduced; one: different.
    """
    key, finding = "c", "FFN pruning degrades at once, SID more than PR"
    paper = "degrades as soon as pruning starts; PER within 0.5 points down to 50% of the FFN units; SID much worse"
    table = rows_at(summary, frame_ms)
    dense, rows = dense_row(table, "per", "sid_accuracy"), method_rows(table, "ffn", "density", "per", "sid_accuracy")
    if dense is None or rows.empty:
        missing = "dense model" if dense is None else "FFN-pruned model"
        return verdict_row(key, finding, paper, f"no {missing} with both PR and SID results at {frame_ms:g} ms",
                           "not measured")
    tolerance = {"PR": per_tolerance, "SID": sid_tolerance}
    losses = {task: [loss(v, dense[METRIC[task]], task) for v in rows[METRIC[task]]] for task in METRIC}
    improves = [task for task in METRIC if min(losses[task]) < -tolerance[task]]
    sparsest = {task: losses[task][-1] for task in METRIC}
    lost_at_end = [task for task in METRIC if sparsest[task] > tolerance[task]]
    degrades = not improves and bool(lost_at_end)
    sid_more = sparsest["SID"] / sid_tolerance > sparsest["PR"] / per_tolerance
    ours = (f"at density {fmt(rows['density'].iloc[-1])} (sparsest of {len(rows)}): PER {sparsest['PR']:+.1f} "
            f"points, SID accuracy {-sparsest['SID']:+.1f} points vs dense; "
            + (f"better than dense beyond tolerance on {', '.join(improves)} along the way; " if improves else
               "never better than dense beyond tolerance; ")
            + (f"{' and '.join(lost_at_end)} lost at the end; " if lost_at_end else "no task lost at the end; ")
            + f"SID {'more' if sid_more else 'less'} affected than PR (in tolerance units)")
    return verdict_row(key, finding, paper, ours, combine([degrades, sid_more]))


# -- d: distilled students ---------------------------------------------------------------------------------------
def students_keep_sid_lose_pr(summary: pd.DataFrame, frame_ms: int, per_tolerance: float = PER_TOLERANCE,
                              sid_tolerance: float = SID_TOLERANCE) -> dict:
    """Finding d: the deeper student keeps SID but loses PR; the shallower one loses more PR.

    The deeper student is the distilled model of highest density (layers / the teacher's; ours 3 of 6, the
    paper's 6 of 12), the shallower the one of lowest (ours 1, the paper's 2). Parts: (1) the deeper keeps SID,
    (2) the deeper loses PR, (3) the shallower's PER is worse than the deeper's by more than per_tolerance.
    Not reproduced when (1) fails (the students do not keep SID); reproduced when all hold; else different
    (e.g. our deeper student also keeps PR).
    """
    key, finding = "d", "deeper students keep SID but lose PR; shallower lose more"
    paper = "6- and 2-layer students (of 12) keep SID; both lose PR, the 2-layer one far more"
    table = rows_at(summary, frame_ms)
    dense = dense_row(table, "per", "sid_accuracy")
    rows = method_rows(table, "distill", "density", "per", "sid_accuracy")
    if dense is None or len(rows) < 2:
        missing = "dense model" if dense is None else "two distilled students"
        return verdict_row(key, finding, paper, f"no {missing} with both PR and SID results at {frame_ms:g} ms",
                           "not measured")
    tol = dict(per_tolerance=per_tolerance, sid_tolerance=sid_tolerance)
    deep, shallow = rows.iloc[0], rows.iloc[-1]
    deep_keeps_sid = keeps(deep["sid_accuracy"], dense["sid_accuracy"], "SID", **tol)
    deep_loses_pr = not keeps(deep["per"], dense["per"], "PR", **tol)
    shallow_loses_more = shallow["per"] > deep["per"] + per_tolerance
    ours = (f"deeper (density {fmt(deep['density'])}): {scores(deep)}; shallower ({fmt(shallow['density'])}): "
            f"{scores(shallow)}; dense: {scores(dense)}. Deeper {'keeps' if deep_keeps_sid else 'loses'} SID, "
            f"{'loses' if deep_loses_pr else 'keeps'} PR; shallower "
            f"{'loses more PR' if shallow_loses_more else 'not clearly worse on PR'}")
    if not deep_keeps_sid:
        verdict = "not reproduced"
    else:
        verdict = "reproduced" if deep_loses_pr and shallow_loses_more else "different"
    return verdict_row(key, finding, paper, ours, verdict)


# -- e: distillation's runtime tradeoff --------------------------------------------------------------------------
def distillation_best_runtime_tradeoff(summary: pd.DataFrame, frame_ms: int, per_tolerance: float = PER_TOLERANCE,
                                       rtf_tolerance: float = RTF_TOLERANCE) -> dict:
    """Finding e: distillation gives the best tradeoff between PER and runtime.

    Runtime is our `real_time_factor`, measured on the CPU of the study (the paper's is on a GPU). The students
    are set against every model of RUNTIME_RIVALS (dense, weight, heads, ffn, truncate; the combined recipe is
    finding g) on (real-time factor, PER), with `clearly_dominates`. Reproduced: no student is clearly
    dominated by a rival, and the students clearly dominate at least one rival. Different: no student is
    dominated, but none dominates a rival either (one more point on the frontier, not the best). Not
    reproduced: a rival clearly dominates a student.
    """
    key, finding = "e", "distillation gives the best PER-runtime tradeoff"
    paper = "the best tradeoff of all methods on GPU runtime (fewer layers, fewer kernel calls)"
    table = rows_at(summary, frame_ms)
    needed = ("per", "real_time_factor")
    students = method_rows(table, "distill", *needed)
    rivals = pd.concat([method_rows(table, m, *needed) for m in RUNTIME_RIVALS], ignore_index=True)
    if students.empty or rivals.empty:
        missing = "distilled student" if students.empty else "model of another method"
        return verdict_row(key, finding, paper, f"no {missing} with a PER and a real-time factor at {frame_ms:g} ms",
                           "not measured")
    tol = dict(per_tolerance=per_tolerance, rtf_tolerance=rtf_tolerance)
    beaten_by = {s["model"]: [r["model"] for _, r in rivals.iterrows() if clearly_dominates(r, s, **tol)]
                 for _, s in students.iterrows()}
    beats = sorted({r["model"] for _, r in rivals.iterrows() for _, s in students.iterrows()
                    if clearly_dominates(s, r, **tol)})
    described = "; ".join(f"{s['model']}: RTF {s['real_time_factor']:.3g}, PER {s['per']:.1f}%"
                          + (f", beaten by {', '.join(beaten_by[s['model']])}" if beaten_by[s["model"]] else "")
                          for _, s in students.iterrows())
    ours = (f"CPU real-time factor (paper: GPU). {described}. Students clearly beat "
            + (", ".join(beats) if beats else "none") + f" of {len(rivals)} other models")
    if any(beaten_by.values()):
        verdict = "not reproduced"
    else:
        verdict = "reproduced" if beats else "different"
    return verdict_row(key, finding, paper, ours, verdict)


# -- f: head vs FFN pruning at equal MACs ------------------------------------------------------------------------
def heads_ffn_runtime_ratios(summary: pd.DataFrame, frame_ms: int) -> np.ndarray | None:
    """Each head-pruned model's real-time factor / that of FFN pruning at the same MACs per second (the FFN-pruned
    models and the dense one, interpolated linearly in MACs). Only head-pruned models within the FFN curve's
    MACs range are compared (an empty array when none is); None without head-pruned models or an FFN curve."""
    table = rows_at(summary, frame_ms)
    needed = ("macs_per_second", "real_time_factor")
    heads = method_rows(table, "heads", *needed)
    curve = pd.concat([method_rows(table, "ffn", *needed), method_rows(table, "dense", *needed)])
    curve = curve.groupby("macs_per_second", as_index=False)["real_time_factor"].mean()  # sorted by MACs
    if len(curve) < 2 or heads.empty:
        return None
    macs = curve["macs_per_second"].to_numpy()
    comparable = heads[heads["macs_per_second"].between(macs[0], macs[-1])]
    ffn_rtf = np.interp(comparable["macs_per_second"], macs, curve["real_time_factor"])
    return comparable["real_time_factor"].to_numpy() / ffn_rtf


def heads_ffn_runtime_ratio(summary: pd.DataFrame, frame_ms: int) -> float | None:
    """The geometric mean of `heads_ffn_runtime_ratios` (None when nothing is comparable): below 1, head pruning
    runs faster than FFN pruning at equal MACs."""
    ratios = heads_ffn_runtime_ratios(summary, frame_ms)
    return None if ratios is None or not len(ratios) else math.exp(float(np.mean(np.log(ratios))))


def heads_faster_than_ffn(summary: pd.DataFrame, frame_ms: int, rtf_tolerance: float = RTF_TOLERANCE) -> dict:
    """Finding f: at equal MACs per second, head pruning gives a lower real-time factor than FFN pruning.

    The FFN-pruned models (with the dense model, where both trajectories start) give real-time factor as a
    function of MACs per second, interpolated linearly between them. Each head-pruned model whose MACs lie in
    that curve's range is compared with the curve at its MACs: ratio = its RTF / the FFN curve's. Reproduced
    when the geometric mean of the ratios is below 1 - rtf_tolerance; not reproduced otherwise (no clear
    difference, or FFN pruning faster: the text says which). Not measured without head-pruned models at MACs
    the FFN curve covers.
    """
    key, finding = "f", "head pruning speeds runtime more than FFN pruning at equal MACs"
    paper = "head pruning gives a large GPU speed-up; FFN pruning little, even at lower MACs"
    ratios = heads_ffn_runtime_ratios(summary, frame_ms)
    if ratios is None:
        return verdict_row(key, finding, paper, f"no head- and FFN-pruned models with MACs and a real-time factor "
                           f"at {frame_ms:g} ms", "not measured")
    if not len(ratios):
        return verdict_row(key, finding, paper, "no head-pruned model within the MACs range of the FFN-pruned ones",
                           "not measured")
    ratio = math.exp(float(np.mean(np.log(ratios))))
    if ratio < 1 - rtf_tolerance:
        verdict, how = "reproduced", "head pruning faster"
    else:
        verdict, how = "not reproduced", "FFN pruning faster" if ratio > 1 + rtf_tolerance else "no clear difference"
    ours = (f"CPU real-time factor of {len(ratios)} head-pruned models / that of FFN pruning at the same MACs "
            f"(interpolated): geometric mean {ratio:.2f} (range {ratios.min():.2f}-{ratios.max():.2f}): {how}")
    return verdict_row(key, finding, paper, ours, verdict)


# -- g: the combined recipe against distillation alone ----------------------------------------------------------
def combined_beats_distillation(summary: pd.DataFrame, frame_ms: int, per_tolerance: float = PER_TOLERANCE,
                                sid_tolerance: float = SID_TOLERANCE, rtf_tolerance: float = RTF_TOLERANCE) -> dict:
    """Finding g: the combined recipe (distil, prune heads, prune FFN units) beats distillation alone.

    Compares the recipe's final model (its lowest density) with the student it started from: the shallowest
    distilled student at least as dense as the recipe's densest model (pruning only lowers density, and a
    student of the teacher's width has the same density in both methods' terms). Cheaper: fewer MACs per
    second and fewer non-zero parameters, and a real-time factor not higher than the student's by more than
    rtf_tolerance. Reproduced: cheaper and keeps both PR and SID relative to the student (the same tolerances
    as against the dense model). Not reproduced: not cheaper, or loses both tasks. Different: cheaper, keeps
    one task, loses the other.
    """
    key, finding = "g", "the combined recipe beats distillation alone"
    paper = "strictly better than distillation alone; close to weight pruning on MACs and parameters"
    table = rows_at(summary, frame_ms)
    needed = ("density", "per", "sid_accuracy", "macs_per_second", "nonzero_params", "real_time_factor")
    combined, students = method_rows(table, "combined", *needed), method_rows(table, "distill", *needed)
    if len(combined):
        students = students[students["density"] >= combined["density"].max() - 1e-6]
    if combined.empty or students.empty:
        missing = "combined model" if combined.empty else "distilled student it started from"
        return verdict_row(key, finding, paper, f"no {missing} with PR, SID and cost at {frame_ms:g} ms",
                           "not measured")
    final, student = combined.iloc[-1], students.iloc[-1]
    cheaper = (final["macs_per_second"] < student["macs_per_second"]
               and final["nonzero_params"] < student["nonzero_params"]
               and final["real_time_factor"] <= student["real_time_factor"] * (1 + rtf_tolerance))
    tol = dict(per_tolerance=per_tolerance, sid_tolerance=sid_tolerance)
    kept = {task: keeps(final[METRIC[task]], student[METRIC[task]], task, **tol) for task in METRIC}
    ratio = {c: final[c] / student[c] for c in ("macs_per_second", "nonzero_params", "real_time_factor")}
    ours = (f"{final['model']} vs {student['model']}: MACs x{ratio['macs_per_second']:.2f}, non-zero parameters "
            f"x{ratio['nonzero_params']:.2f}, CPU real-time factor x{ratio['real_time_factor']:.2f}; "
            f"{scores(final)} vs {scores(student)}: {'cheaper' if cheaper else 'not cheaper'}, "
            + ", ".join(f"{'keeps' if ok else 'loses'} {task}" for task, ok in kept.items()))
    if not cheaper or not any(kept.values()):
        verdict = "not reproduced"
    else:
        verdict = "reproduced" if all(kept.values()) else "different"
    return verdict_row(key, finding, paper, ours, verdict)


# -- all of them -------------------------------------------------------------------------------------------------
def all_verdicts(summary: pd.DataFrame, frame_ms: int, per_tolerance: float = PER_TOLERANCE,
                 sid_tolerance: float = SID_TOLERANCE, density_tolerance: float = DENSITY_TOLERANCE,
                 rtf_tolerance: float = RTF_TOLERANCE) -> pd.DataFrame:
    """One row per finding (a to g; a and b once per task) at `frame_ms`, columns VERDICT_COLUMNS."""
    quality = dict(per_tolerance=per_tolerance, sid_tolerance=sid_tolerance)
    rows = [
        *(weight_pruning_keeps(summary, frame_ms, task, density_tolerance=density_tolerance, **quality)
          for task in METRIC),
        *(head_pruning_keeps(summary, frame_ms, task, density_tolerance=density_tolerance, **quality)
          for task in METRIC),
        ffn_pruning_degrades(summary, frame_ms, **quality),
        students_keep_sid_lose_pr(summary, frame_ms, **quality),
        distillation_best_runtime_tradeoff(summary, frame_ms, per_tolerance=per_tolerance, rtf_tolerance=rtf_tolerance),
        heads_faster_than_ffn(summary, frame_ms, rtf_tolerance=rtf_tolerance),
        combined_beats_distillation(summary, frame_ms, rtf_tolerance=rtf_tolerance, **quality),
    ]
    return pd.DataFrame([{"frame_ms": frame_ms, **row} for row in rows], columns=list(VERDICT_COLUMNS))


# -- the title question: does a smaller model run faster? ----------------------------------------------------------
COST_COLUMNS = {"macs_per_second": "macs_fraction", "nonzero_params": "params_fraction",
                "real_time_factor": "rtf_fraction"}  # summary column -> its fraction of the dense model's


def relative_cost(summary: pd.DataFrame, frame_ms: int) -> pd.DataFrame:
    """Every main model of `frame_ms` with its MACs per second, non-zero parameters and real-time factor as
    fractions of the dense model's (columns model, method, density, per, macs_fraction, params_fraction,
    rtf_fraction), densest first within each method. Models without all three are left out; an empty table when
    the dense model lacks them."""
    table = rows_at(summary, frame_ms).dropna(subset=list(COST_COLUMNS))
    dense = dense_row(table, *COST_COLUMNS)
    out = pd.DataFrame(columns=["model", "method", "density", "per", *COST_COLUMNS.values()])
    if dense is None:
        return out
    table = table[~table["method"].isin(["fbank", "random-init"])].copy()
    for column, fraction in COST_COLUMNS.items():
        table[fraction] = table[column] / dense[column]
    table = table.sort_values(["method", "density"], ascending=[True, False], kind="stable")
    return table[list(out.columns)].reset_index(drop=True)


def rank_correlation(x, y) -> float:
    """Spearman's rank correlation of two equally long sequences (ties get their average rank); NaN with fewer
    than 3 pairs or when either side is constant."""
    x, y = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    if len(x) != len(y):
        raise ValueError(f"rank_correlation needs sequences of one length, got {len(x)} and {len(y)}")
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(np.corrcoef(x.rank(), y.rank())[0, 1])


COMPRESSED_METHODS = ("weight", "heads", "ffn", "distill", "truncate", "combined")


def judged_models(summary: pd.DataFrame) -> pd.DataFrame:
    """The compressed models of the table with a PR or SID result: what the verdicts judge (none: no verdicts)."""
    has_result = summary[["per", "sid_accuracy"]].notna().any(axis=1)
    return summary[summary["method"].isin(COMPRESSED_METHODS) & has_result]


def study_verdicts(summary: pd.DataFrame) -> pd.DataFrame:
    """`all_verdicts` at every frame rate of the table, in rate order."""
    rates = sorted(int(r) for r in summary["frame_ms"].dropna().unique())
    return pd.concat([all_verdicts(summary, rate) for rate in rates], ignore_index=True)


def criteria_text() -> str:
    """The tolerances the verdicts apply, in one line."""
    return (f"criteria: PR kept while PER <= dense + {PER_TOLERANCE:g} points; SID kept while accuracy >= dense - "
            f"{SID_TOLERANCE:g} points; real-time factors differ beyond {RTF_TOLERANCE:.0%}; densities match the "
            f"paper's within {DENSITY_TOLERANCE:g}")
