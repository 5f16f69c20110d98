"""Notebook 09's measurements, as functions: where a MelHuBERT's parameters sit, what the truncations of the
preset's model cost, and the timing pass that gives every evaluated model of the study its real-time factor.

    parameter_table(model, name) -> DataFrame          one row per (place, component): parameters
    truncation_costs(preset, depths, timing, threads) -> DataFrame
        the preset's model at both frame rates and its truncations: parameters, MACs (checked against the closed
        form), real-time factor
    models_to_time(summary_rows, downstream_table) -> (candidates, to_time)
        the study's rows whose checkpoint (from 08's table) is on disk
    time_in_turns(to_time, timing, pass_repeats, threads) -> DataFrame
        every model timed one after another, then all models of a frame rate in turns; the medians in turns are
        the study's real-time factors
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from compress_lib.config import config_for_preset
from compress_lib.downstream.upstream import RANDOM_INIT_PREFIX, load_upstream
from compress_lib.efficiency.closed_form import closed_form_macs_per_second
from compress_lib.efficiency.macs import macs_per_second
from compress_lib.efficiency.params import component_of, count_parameters
from compress_lib.efficiency.runtime import interleaved_real_time_factors, real_time_factor
from compress_lib.model import MelHuBERT
from compress_lib.files import resolve_path

SAME_WORK = ("dense", "random-init", "weight")  # methods whose models all compute exactly what the dense one does


def place_of(name: str) -> str:
    """'layer 4' for a parameter of the 4th Transformer layer, else 'front-end' or 'cluster head'."""
    if name.startswith("layers."):
        return f"layer {int(name.split('.')[1]) + 1}"
    return "cluster head" if component_of(name) == "heads" else "front-end"


def parameter_table(model: torch.nn.Module, model_name: str) -> pd.DataFrame:
    """One row per (place, component) with its parameter count."""
    rows = [(place_of(n), component_of(n), p.numel()) for n, p in model.named_parameters()]
    table = pd.DataFrame(rows, columns=["where", "component", "parameters"])
    table = table.groupby(["where", "component"], sort=False, as_index=False)["parameters"].sum()
    table.insert(0, "model", model_name)
    return table


def parameter_totals(params: pd.DataFrame) -> pd.DataFrame:
    """Per model of `parameter_table` rows: parameters per component, their total, the total without the cluster
    head, and the feed-forward layers' share of the Transformer layers' parameters."""
    totals = params.pivot_table(index="model", columns="component", values="parameters", aggfunc="sum", sort=False)
    totals["total"] = totals.sum(axis=1)
    totals["without head"] = totals["total"] - totals["heads"]
    layer_params = totals["ffn"] + totals["attention"] + totals["layer_norm"]
    totals["FFN share of the layers"] = (totals["ffn"] / layer_params).round(3)
    return totals


def same_work_spread(timings: pd.DataFrame) -> list[str]:
    """Per frame rate, how far apart the real-time factors of the models that do exactly the dense model's work
    (SAME_WORK) lie, one after another and in turns: one line each. They should agree; the spread shows how much
    a timing method can be trusted."""
    lines = []
    for frame_ms, group in timings[timings["method"].isin(SAME_WORK)].groupby("frame_ms"):
        spans = {label: group[column].agg(["min", "max"]) for label, column in
                 (("one after another", "one_after_another_real_time_factor"),
                  ("in turns (this pass)", "real_time_factor"))}
        lines.append(f"{frame_ms} ms, {len(group)} models doing the same work: real-time factor "
                     + "; ".join(f"{label} {s['min']:.4g} to {s['max']:.4g} (max/min {s['max'] / s['min']:.2f})"
                                 for label, s in spans.items()))
    return lines


def build_on_meta(model_preset: str, frame_ms: int) -> MelHuBERT:
    """A MelHuBERT of a preset's size without memory for its weights (for counting them)."""
    with torch.device("meta"):
        return MelHuBERT(config_for_preset(model_preset, frame_ms))


def truncation_costs(preset: str, depths, timing: dict, threads: int | None = None) -> pd.DataFrame:
    """The preset's MelHuBERT at 10 and 20 ms, in full and cut to each of `depths` shorter than it: parameters,
    MACs per second (ptflops, checked against the closed form: AssertionError otherwise) and real-time factor
    (`timing`: seconds, warmup, repeats). Random weights: no cost depends on their values."""
    rows = []
    for frame_ms in (10, 20):
        model = MelHuBERT(config_for_preset(preset, frame_ms)).eval()
        variants = {"full": None, **{f"first-{k}": k for k in sorted(depths, reverse=True)
                                     if k < model.cfg.num_layers}}
        for variant, num_layers in variants.items():
            rtf = real_time_factor(model, num_layers=num_layers, threads=threads, **timing)
            rows.append({
                "model": f"MelHuBERT {variant}", "frame_ms": frame_ms, "layers": num_layers or model.cfg.num_layers,
                "params": count_parameters(model, num_layers=num_layers)["params"],
                "macs_per_second": macs_per_second(model, num_layers=num_layers),
                "closed_form_macs_per_second": closed_form_macs_per_second(model, num_layers=num_layers),
                "real_time_factor": rtf["median"],
                "real_time_factor_min": rtf["spread"][0], "real_time_factor_max": rtf["spread"][1],
                "feature_real_time_factor": rtf["feature_median"], "threads": rtf["threads"],
            })
    costs = pd.DataFrame(rows)
    if not (costs["macs_per_second"] == costs["closed_form_macs_per_second"]).all():
        raise AssertionError("ptflops and the closed form disagree on a MAC count")
    return costs


def checkpoint_of(spec) -> str | None:
    """The downstream table's checkpoint (a path from the repository root, `random-init:` first for the twin) as
    load_upstream takes it, or None when there is none on disk."""
    if not isinstance(spec, str) or not spec:
        return None
    prefix = RANDOM_INIT_PREFIX if spec.startswith(RANDOM_INIT_PREFIX) else ""
    path = resolve_path(spec.removeprefix(prefix))
    return prefix + str(path) if path.is_file() else None


def models_to_time(summary_rows: pd.DataFrame, downstream_table: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's rows evaluated by notebook 08 (its `downstream.csv` names their checkpoints), and of those the
    ones whose checkpoint is on disk."""
    columns = ["model", "frame_ms", "checkpoint"]
    checkpoints = (pd.read_csv(downstream_table, usecols=columns) if Path(downstream_table).is_file()
                   else pd.DataFrame(columns=columns))
    candidates = summary_rows.merge(checkpoints, on=["model", "frame_ms"])
    candidates["checkpoint"] = candidates["checkpoint"].map(checkpoint_of)
    return candidates, candidates[candidates["checkpoint"].notna()]


def time_in_turns(to_time: pd.DataFrame, timing: dict, pass_repeats: int, threads: int | None = None) -> pd.DataFrame:
    """Per frame rate, every model of `to_time` timed one after another (`real_time_factor`), then all of them
    in turns (`interleaved_real_time_factors`, `pass_repeats` rounds), so that each sees the same load. One row
    per model: the median in turns (the study's real-time factor), its quartiles and spread, the one-after-another
    median, threads and rounds."""
    rows = []
    for frame_ms, group in to_time.groupby("frame_ms"):
        upstreams = [load_upstream(spec, name=name) for spec, name in zip(group["checkpoint"], group["model"])]
        one_after_another = [real_time_factor(u.model, num_layers=u.num_layers, threads=threads, **timing)
                             for u in upstreams]
        in_turns = interleaved_real_time_factors([(u.model, u.num_layers) for u in upstreams],
                                                 seconds=timing["seconds"], warmup=timing["warmup"],
                                                 repeats=pass_repeats, threads=threads)
        for (_, row), rtf, alone in zip(group.iterrows(), in_turns, one_after_another):
            rows.append({"model": row["model"], "method": row["method"], "frame_ms": int(frame_ms),
                         "density": row["density"], "real_time_factor": rtf["median"],
                         "real_time_factor_q1": rtf["quartiles"][0], "real_time_factor_q3": rtf["quartiles"][1],
                         "real_time_factor_min": rtf["spread"][0], "real_time_factor_max": rtf["spread"][1],
                         "one_after_another_real_time_factor": alone["median"],
                         "threads": rtf["threads"], "repeats": rtf["repeats"]})
    return pd.DataFrame(rows)
