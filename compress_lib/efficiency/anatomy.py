"""Notebook 12's two experiments, as functions: where weight pruning's sparse kernels start to pay, and where a
forward pass of each method's most compressed model spends its CPU time.

    kernel_sweep(sizes, frame_rates, densities, repeats, warmup, seed) -> DataFrame
        the six linear layers of one Transformer layer of each model size, dense against CSR, at every density
    crossover_table(kernels) -> DataFrame        per size and frame rate: the crossover density and its spread
    breakdown_candidates(structures_root, preset, frame_ms, seed, sizes) -> (candidates, left out)
        the dense model and the sparsest point of each method's trajectory, rebuilt from its recorded structure
    profile_candidates(candidates, seed, repeats, warmup) -> (operators, breakdown, models)
        every candidate profiled in turns: per operator, per category, per model
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from compress_lib.config import config_for_preset
from compress_lib.efficiency.breakdown import by_category, point_config, profile_in_turns, sparsest_point
from compress_lib.efficiency.inputs import example_inputs
from compress_lib.efficiency.params import count_parameters
from compress_lib.efficiency.sparse import (
    LAYER_LINEARS, apply_masks, magnitude_masks, sparse_crossover, sparse_linear_sweep, sparsify,
)
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT, seeded
from compress_lib.files import display_path

# method -> (notebook folder, table, variant of the main trajectory) whose sparsest point is profiled
BREAKDOWN_METHODS = {
    "weight": ("03_weight_pruning", "weight.csv", None),
    "heads": ("04_head_pruning", "heads.csv", None),
    "ffn": ("05_lowrank", "ffn.csv", None),
    "distill": ("06_distillation", "distill.csv", "student"),
    "combined": ("07_combined", "combined.csv", None),
}


def seeded_melhubert(cfg, seed: int) -> MelHuBERT:
    """A MelHuBERT of `cfg` with seeded random weights (timings do not depend on the weights' values)."""
    return seeded(lambda: MelHuBERT(cfg), seed)


def parse_densities(text) -> list[float]:
    """'1,0.5,0.1' -> [1.0, 0.5, 0.1], highest first; one clear error for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)  # papermill passes -p densities 0.5 as a number
    if not isinstance(text, str):
        raise CompressLibError(f"densities must be a comma-separated string such as '1,0.5,0.1', got {text!r}")
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise CompressLibError(f"densities must be numbers in (0, 1], comma-separated; got {text!r}") from None
    if not values or not all(0 < v <= 1 for v in values) or len(set(values)) != len(values):
        raise CompressLibError(f"densities must be distinct numbers in (0, 1], comma-separated; got {text!r}")
    return sorted(values, reverse=True)


def one_layer(size: str, rate: int, seed: int) -> torch.nn.Module:
    """Layer 0 of a MelHuBERT of a preset's size (seeded random weights); its shapes are every layer's."""
    return seeded_melhubert(config_for_preset(size, rate, num_layers=1), seed).layers[0]


def kernel_sweep(sizes, frame_rates, densities, repeats: int, warmup: int, seed: int) -> pd.DataFrame:
    """`sparse_linear_sweep` of one layer of each model size at each frame rate (1 s of speech per call, batch 1):
    one row per size, frame rate and density, with the layer's shape and `speedup` (dense time / sparse time)."""
    rows = []
    for size in sizes:
        for rate in frame_rates:
            cfg = config_for_preset(size, rate)
            layer = one_layer(size, rate, seed)
            swept = sparse_linear_sweep(layer, densities, frames=cfg.frames_per_second, batch=1, repeats=repeats,
                                        warmup=warmup, threads=None, seed=seed)
            weights = sum(layer.get_submodule(n).weight.numel() for n in LAYER_LINEARS)
            rows += [{"size": size, "frame_ms": rate, "layers": cfg.num_layers, "width": cfg.embed_dim,
                      "ffn": cfg.layer_ffn_dims[0], "layer_weights": weights, **r} for r in swept]
    kernels = pd.DataFrame(rows)
    kernels["speedup"] = 1 / kernels["ratio"]
    return kernels


def crossover_table(kernels: pd.DataFrame) -> pd.DataFrame:
    """Per size and frame rate: the density below which the CSR kernel wins (`sparse_crossover`) and the same
    from the rounds' quartiles (its spread), the dense time, and the ratio at density 1 and at the sparsest."""
    rows = []
    for (size, rate), group in kernels.groupby(["size", "frame_ms"], sort=False):
        found = sparse_crossover(group.to_dict("records"))
        spread = {f"crossover_{end}": sparse_crossover([{"density": d, "ratio": r} for d, r in
                                                        zip(group["density"], group[column])])["crossover_density"]
                  for end, column in (("low", "ratio_q3"), ("high", "ratio_q1"))}
        sparsest = group.loc[group["density"].idxmin()]
        rows.append({
            "size": size, "frame_ms": rate, "frames": int(group["frames"].iloc[0]),
            "shape": f"{group['layers'].iloc[0]} x {group['width'].iloc[0]}, FFN {group['ffn'].iloc[0]}",
            "layer_weights": int(group["layer_weights"].iloc[0]), **found, **spread,
            "dense_ms": group["dense_s"].median() * 1e3,
            "ratio_at_density_1": group.loc[group["density"].idxmax(), "ratio"],
            "sparsest_density": sparsest["density"], "ratio_at_sparsest": sparsest["ratio"],
            "threads": int(group["threads"].iloc[0]), "rounds": int(group["repeats"].iloc[0]),
        })
    return pd.DataFrame(rows).astype({"crossover_density": float, "wins_at_or_below": float, "loses_at": float,
                                      "crossover_low": float, "crossover_high": float})


def breakdown_candidates(structures_root, preset: str, frame_ms: int, seed: int,
                         sizes=()) -> tuple[list[dict], list[str]]:
    """The models of the runtime breakdown: the dense MelHuBERT of `preset`, the sparsest point of each method's
    main trajectory at `frame_ms` rebuilt from the structure its table recorded (weight pruning: the dense model
    with magnitude masks at that density, and the same masks run with CSR kernels), and the paper-size dense model
    when "paper" is among `sizes` at another preset. Each candidate: model, method, density, source,
    recorded_params (checked by `profile_candidates`) and build() -> model or (model, masks, model counted). Also
    one note per method left out (its table is missing or has no such point)."""
    base_cfg = config_for_preset(preset, frame_ms)
    candidates = [dict(model="dense", method="dense", density=1.0, source="",
                       build=lambda: seeded_melhubert(base_cfg, seed))]
    left_out = []
    for method, (folder, name, variant) in BREAKDOWN_METHODS.items():
        table_file = Path(structures_root) / folder / name
        if not table_file.is_file():
            left_out.append(f"{method} ({display_path(table_file)} does not exist)")
            continue
        try:
            point = sparsest_point(pd.read_csv(table_file), frame_ms, method=method, variant=variant)
        except CompressLibError as exc:
            left_out.append(f"{method} ({display_path(table_file)}: {exc})")
            continue
        source = f"{display_path(table_file)}, point {point['point']}"
        if method == "weight":
            density = float(point["density"])

            def masked(density=density):
                model = seeded_melhubert(base_cfg, seed)
                masks = magnitude_masks(model, density)
                apply_masks(model, masks)
                return model, masks, model

            def csr(masked=masked):
                model, masks, _ = masked()
                return sparsify(model, masks), masks, model  # CSR weights are no parameters: count the masked twin

            candidates.append(dict(model=f"weight {density:.2f} (masked)", method="weight", density=density,
                                   source=source, recorded_params=int(point["params"]), build=masked))
            candidates.append(dict(model=f"weight {density:.2f} (CSR)", method="weight, CSR kernels",
                                   density=density, source=source, recorded_params=int(point["params"]), build=csr))
        else:
            cfg = point_config(point, base_cfg)
            candidates.append(dict(model=f"{method} {float(point['density']):.2f}", method=method,
                                   density=float(point["density"]), source=source,
                                   recorded_params=int(point["params"]),
                                   build=lambda cfg=cfg: seeded_melhubert(cfg, seed)))
    if "paper" in sizes and preset != "paper":  # the paper's width for comparison
        paper_cfg = config_for_preset("paper", frame_ms)
        candidates.append(dict(model="dense (paper size)", method="dense, paper size", density=1.0, source="",
                               build=lambda: seeded_melhubert(paper_cfg, seed)))
    return candidates, left_out


def profile_candidates(candidates: list[dict], seed: int, repeats: int,
                       warmup: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Build every candidate (its parameter count must equal the recorded one: AssertionError otherwise), profile
    them in turns on 1 s of speech (`profile_in_turns`), and return the operators (per model and top-level
    operator), the breakdown by category and one row per model (shape, parameters, calls, times)."""
    runs, infos = {}, {}
    for c in candidates:
        built = c["build"]()
        model, masks, counted = built if isinstance(built, tuple) else (built, None, built)
        params = count_parameters(counted, masks)
        if c.get("recorded_params") is not None and params["params"] != c["recorded_params"]:
            raise AssertionError(f"{c['model']}: rebuilt with {params['params']:,} parameters, but {c['source']} "
                                 f"recorded {c['recorded_params']:,}: the structures are of another model size")
        runs[c["model"]] = (model, example_inputs(model, 1.0, seed=seed))
        infos[c["model"]] = {"model": c["model"], "method": c["method"], "density": c["density"],
                             "layers": model.cfg.num_layers, "heads": sum(model.cfg.layer_heads),
                             "ffn_units": sum(model.cfg.layer_ffn_dims),
                             "layer_heads": " ".join(map(str, model.cfg.layer_heads)),
                             "layer_ffn_dims": " ".join(map(str, model.cfg.layer_ffn_dims)),
                             "params": params["params"], "nonzero_params": params["nonzero"], "source": c["source"]}
        del counted, built
    profiled = profile_in_turns(runs, repeats=repeats, warmup=warmup)
    operator_frames, category_frames, models_rows = [], [], []
    for name, ops in profiled.items():
        info = {k: infos[name][k] for k in ("model", "method", "density", "layers", "heads", "ffn_units")}
        operator_frames.append(ops.assign(**info))
        category_frames.append(by_category(ops).assign(**info))
        models_rows.append({**infos[name], "calls_per_forward": ops["calls"].sum(),
                            "aten_calls_per_forward": ops["nested_calls"].sum(),
                            "operator_ms": ops.attrs["operator_us"] / 1e3,
                            "forward_ms": ops.attrs["forward_us_median"] / 1e3,
                            "threads": ops.attrs["threads"], "repeats": ops.attrs["repeats"]})
    return (pd.concat(operator_frames, ignore_index=True), pd.concat(category_frames, ignore_index=True),
            pd.DataFrame(models_rows))
