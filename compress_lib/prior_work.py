"""The five published compressed models beside MelHuBERT, measured in one framework (notebook 10, the paper's
Figure 4): which models are measured, one results row per model, and the attention-map reuse comparison.

    parse_models(text) -> [name]                    'all' or a comma-separated list of zoo names and 'melhubert'
    architecture_row(name) -> dict                  a zoo model's shapes beside its published parameter count
    catalogue(selected, preset, frame_rates, frame_ms) -> [Entry]
                                                    the prior work at published size, MelHuBERT at the preset's and
                                                    the paper's size with its first-6 / first-2 truncations
    measure(entry, seed, timing) -> dict             parameters, MACs (by part, checked against the closed form),
                                                    real-time factor and operator calls
    readable(table) -> DataFrame                    the results in readable units
    our_downstream_points(results_root) -> (DataFrame, path)   our evaluated models, for Figure 4
    attention_reuse(seed, timing) -> DataFrame      ARMHuBERT against its no-reuse control and STaRHuBERT, in turns

Published numbers (parameters, PER, SID accuracy) are cited values (`compress_lib.zoo`), never measured here.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pandas as pd
import torch

from compress_lib.config import config_for_preset
from compress_lib.efficiency import closed_form_macs_per_second, macs_by_part, macs_per_second, profile_model
from compress_lib.efficiency.inputs import example_inputs
from compress_lib.efficiency.runtime import paired_ratio, time_interleaved
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT, seeded
from compress_lib.results import SUMMARY_COLUMNS, read_summary, summary_frame
from compress_lib.zoo import (
    DESCRIPTIONS, PUBLISHED_PARAMS, PUBLISHED_RESULTS, ZOO, ZOO_CONFIGS, WavEncoder, build_zoo_model,
    frames_per_second,
)

MODEL_CHOICES = (*ZOO, "melhubert")
CITED = "cited from the README of sungnyun/ARMHuBERT (docs/references.md), not measured by us"  # PER, SID


def parse_models(text: str) -> list[str]:
    """'all' -> every zoo model and MelHuBERT; 'hubert-base,melhubert' -> those. One clear error otherwise."""
    if not isinstance(text, str):
        raise CompressLibError(f"models must be a comma-separated string, got {text!r}")
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(MODEL_CHOICES)
    unknown = [n for n in names if n not in MODEL_CHOICES]
    if not names or unknown:
        raise CompressLibError(f"models must be 'all' or a comma-separated list of {', '.join(MODEL_CHOICES)}; "
                               f"got {text!r}")
    return [n for n in MODEL_CHOICES if n in names]  # the study's order


def architecture_row(name: str) -> dict:
    """A zoo model's shapes as built (`ZOO_CONFIGS`) beside its published parameter count (cited). "attention
    maps" counts the layers that compute their own map (ARMHuBERT's odd layers reuse the one before)."""
    cfg = ZOO_CONFIGS[name]
    maps = sum(cfg.reuse_pattern) if cfg.reuse_pattern else cfg.num_layers
    return {
        "model": name, "layers": cfg.num_layers, "width": cfg.embed_dim, "ffn": cfg.ffn_dim, "heads": cfg.num_heads,
        "attention maps": maps, "CNN channels": " ".join(str(c) for c, _, _ in cfg.conv_layers),
        "frames per second": frames_per_second(cfg),
        "published params (M, cited)": PUBLISHED_PARAMS[name] / 1e6, "description": DESCRIPTIONS[name],
    }


@dataclasses.dataclass(frozen=True)
class Entry:
    """One measured model: how to build it and how far to run it."""

    name: str  # shown in tables and figures
    family: str  # "prior work" or "MelHuBERT"
    size: str  # "published", "paper" or the preset
    zoo: str = ""  # the zoo name (prior work only)
    frame_ms: int = 0  # MelHuBERT's frame rate
    num_layers: int | None = None  # stop after the first k layers (None: all)

    def build(self, seed: int) -> torch.nn.Module:
        if self.zoo:
            return build_zoo_model(self.zoo, seed)
        return melhubert(self.size, self.frame_ms, seed)


@functools.cache
def melhubert(size: str, rate: int, seed: int) -> MelHuBERT:
    """MelHuBERT of a preset's size with seeded random weights, built once (its truncations share it)."""
    return seeded(lambda: MelHuBERT(config_for_preset(size, rate)), seed)


def catalogue(selected: list[str], preset: str, frame_rates, frame_ms: int) -> list[Entry]:
    """The models measured, in order: the selected prior work at its published size, then MelHuBERT at the
    preset's size (each of `frame_rates`) and at the paper's size (at `frame_ms`) with its first-6 and first-2
    truncations. At the paper preset the two sizes coincide and each model is measured once."""
    entries = [Entry(n, "prior work", "published", zoo=n) for n in ZOO if n in selected]
    if "melhubert" in selected:
        for rate in frame_rates:
            label = "paper size" if preset == "paper" else f"{preset} preset"
            entries.append(Entry(f"MelHuBERT-{rate}ms ({label})", "MelHuBERT", preset, frame_ms=rate))
        if preset != "paper" or frame_ms not in frame_rates:
            entries.append(Entry(f"MelHuBERT-{frame_ms}ms (paper size)", "MelHuBERT", "paper", frame_ms=frame_ms))
        for k in (6, 2):
            entries.append(Entry(f"MelHuBERT-{frame_ms}ms first-{k} (paper size)", "MelHuBERT", "paper",
                                 frame_ms=frame_ms, num_layers=k))
    return entries


def measure(entry: Entry, seed: int, timing: dict) -> dict:
    """One row of the results table: the model's parameters, MACs (by part), RTF and operator calls. The MAC count
    must equal the architecture's closed form, and the parts must add up to it (AssertionError otherwise).
    `timing`: seconds, warmup, repeats of the real-time factor."""
    model, L = entry.build(seed), entry.num_layers
    profile = profile_model(model, num_layers=L, threads=None, **timing)
    closed_form = closed_form_macs_per_second(model, num_layers=L)
    if profile["macs_per_second"] != closed_form:
        raise AssertionError(f"{entry.name}: ptflops counts {profile['macs_per_second']:,} MACs/s, the closed "
                             f"form {closed_form:,}")
    parts = macs_by_part(model, L)
    front_end = macs_per_second(model, num_layers=0)
    if front_end + parts["attention"] + parts["ffn"] != profile["macs_per_second"]:
        raise AssertionError(f"{entry.name}: the MACs by part do not add up to the total")
    published = PUBLISHED_RESULTS.get(entry.zoo, {})
    layers = L if L is not None else len(model.layers)
    if entry.zoo:
        cfg = ZOO_CONFIGS[entry.zoo]
        fps, maps = frames_per_second(cfg), sum((cfg.reuse_pattern or [True] * layers)[:layers])
    else:
        fps, maps = model.cfg.frames_per_second, layers
    return {
        "model": entry.name, "family": entry.family, "size": entry.size, "zoo_name": entry.zoo,
        "frame_ms": round(1000 / fps), "layers": layers, "attention_maps": maps,
        "params": profile["params"],
        "params_with_heads": profile["params_with_heads"] if L is None else None,  # every parameter held
        "published_params": PUBLISHED_PARAMS.get(entry.zoo),
        "cnn_params": sum(p.numel() for p in model.feature_extractor.parameters()) if entry.zoo else 0,
        "macs_per_second": profile["macs_per_second"], "closed_form_macs_per_second": closed_form,
        "front_end_macs_per_second": front_end, "cnn_macs_per_second": parts["cnn"],
        "attention_macs_per_second": parts["attention"], "ffn_macs_per_second": parts["ffn"],
        "real_time_factor": profile["real_time_factor"],
        "real_time_factor_min": profile["real_time_factor_spread"][0],
        "real_time_factor_max": profile["real_time_factor_spread"][1],
        "feature_real_time_factor": profile["feature_real_time_factor"],
        "operator_calls": profile["operator_calls"], "threads": profile["threads"],
        "published_per": published.get("per"), "published_sid_accuracy": published.get("sid_acc"),
        "results_source": published.get("source", ""),
    }


def with_shares(measured: pd.DataFrame) -> pd.DataFrame:
    """The measured rows with the ratios the chapter reads: published-convention parameters over the published
    count, and the front end's and the wav CNN's shares of MACs and parameters."""
    return measured.assign(
        published_params_ratio=measured["params_with_heads"] / measured["published_params"],
        front_end_mac_share=measured["front_end_macs_per_second"] / measured["macs_per_second"],
        cnn_mac_share=measured["cnn_macs_per_second"] / measured["macs_per_second"],
        cnn_param_share=measured["cnn_params"] / measured["params"],
    )


def readable(t: pd.DataFrame) -> pd.DataFrame:
    """The results in readable units, one row per model."""
    return pd.DataFrame({
        "layers": t["layers"], "frame (ms)": t["frame_ms"],
        "params (M)": t["params"] / 1e6, "params, published convention (M)": t["params_with_heads"] / 1e6,
        "published params (M, cited)": t["published_params"] / 1e6,
        "GMACs/s": t["macs_per_second"] / 1e9, "front-end share of MACs": t["front_end_mac_share"],
        "RTF (CPU, median)": t["real_time_factor"], "RTF min": t["real_time_factor_min"],
        "RTF max": t["real_time_factor_max"], "operator calls": t["operator_calls"],
        "PER % (cited)": t["published_per"], "SID acc % (cited)": t["published_sid_accuracy"],
    }).set_axis(t["model"]).round(4)


def our_downstream_points(results_root) -> tuple[pd.DataFrame, Path | None]:
    """Our evaluated models (rows with a PER) from the study's summary.csv under `results_root` (08_downstream/ or
    beside it), with `params_shown` (the non-zero parameters: weight pruning keeps masked weights in dense
    tensors), and the file they came from; no rows and None when there is none."""
    for path in (Path(results_root) / "08_downstream" / "summary.csv", Path(results_root) / "summary.csv"):
        rows = [r for r in read_summary(path) if r["per"] and r["method"] != "zoo"]
        if rows:
            points = summary_frame(rows)
            points["params_shown"] = points["nonzero_params"].fillna(points["params"])
            return points, path
    return pd.DataFrame(columns=[*SUMMARY_COLUMNS, "params_shown"]), None


def without_reuse(name: str, seed: int) -> WavEncoder:
    """Zoo model `name` with every layer computing its own attention map (same code path, same seed)."""
    cfg = dataclasses.replace(ZOO_CONFIGS[name], name=f"{name}-no-reuse",
                              reuse_pattern=[True] * ZOO_CONFIGS[name].num_layers)
    return seeded(lambda: WavEncoder(cfg), seed)


REUSE_RATIO = "time relative to ARMHuBERT (paired median)"


def attention_reuse(seed: int, timing: dict) -> pd.DataFrame:
    """ARMHuBERT, the same architecture with every layer computing its own map (the control: only the reuse
    differs) and STaRHuBERT, timed in turns (`time_interleaved`) and compared by the median of their per-turn time
    ratios to ARMHuBERT; with their attention maps, attention parameters and MACs (1-second input)."""
    trio = {"armhubert": build_zoo_model("armhubert", seed),
            "armhubert without reuse": without_reuse("armhubert", seed),
            "starhubert": build_zoo_model("starhubert", seed)}
    inputs = {n: example_inputs(m, timing["seconds"]) for n, m in trio.items()}
    times = time_interleaved([functools.partial(m, **inputs[n]) for n, m in trio.items()],
                             warmup=timing["warmup"], repeats=timing["repeats"])
    rows = []
    for (name, model), t in zip(trio.items(), times):
        parts = macs_by_part(model)
        rows.append({
            "model": name, "attention maps": sum(model.cfg.reuse_pattern or [True] * model.cfg.num_layers),
            "attention params (M)": sum(p.numel() for n, p in model.named_parameters() if ".self_attn." in n) / 1e6,
            "attention GMACs/s": parts["attention"] / 1e9, "total GMACs/s": macs_per_second(model) / 1e9,
            REUSE_RATIO: paired_ratio(times[0], t),
        })
    return pd.DataFrame(rows).set_index("model")
