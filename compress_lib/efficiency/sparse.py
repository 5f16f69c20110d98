"""Beyond the paper: does weight pruning run faster with a sparse kernel?

The paper could not time weight pruning: masked weights stay dense, so a pruned model runs at the dense speed.
Here every masked linear layer is replaced by `CSRLinear`, which stores its weight as a sparse CSR matrix and
computes y^T = W x^T + b with `torch.addmm(bias, W_csr, x^T)` (sparse x dense on CPU; the alternative
`F.linear(x, W_csr)` runs several times slower in PyTorch 2.13). `sparse_vs_dense` times the dense forward
against the sparse one across densities; `crossover_density` reports the highest density at which the sparse
forward wins, if any.

The kernels alone: `sparse_linear_sweep` times only the six linear layers of one Transformer layer (the weights
weight pruning thins), dense against CSR at every density in one interleaved pass, and `sparse_crossover` finds
the density below which the CSR kernel wins (notebooks/12_runtime_anatomy.md runs both for two model sizes).

The masks for the experiment come from `magnitude_masks`: global magnitude (|w|) pruning over the q/k/v/out and
fc1/fc2 weights and biases, the paper's criterion, applied in one shot to whatever weights the model holds.
"""

from __future__ import annotations

import copy
import math
import statistics
import warnings

import torch
from torch import nn

from compress_lib.compression.surgery import apply_masks as zero_masked
from compress_lib.compression.weight import magnitude_scores, select_global
from compress_lib.efficiency.closed_form import closed_form_macs
from compress_lib.efficiency.inputs import example_inputs
from compress_lib.efficiency.runtime import paired_ratio, time_interleaved
from compress_lib.threads import num_threads

PRUNABLE = (".self_attn.q_proj.", ".self_attn.k_proj.", ".self_attn.v_proj.", ".self_attn.out_proj.", ".fc1.", ".fc2.")


class CSRLinear(nn.Module):
    """A Linear layer whose weight is a sparse CSR matrix: y = x W^T + b, computed as (W x^T + b)^T."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.weight = linear.weight.detach().to_sparse_csr()  # (out, in), zeros not stored
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(self.out_features)
        self.register_buffer("bias", bias[:, None].clone())  # (out, 1), broadcast over rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)  # (N, in)
        y = torch.addmm(self.bias, self.weight, rows.t())  # (out, N)
        # contiguous (N, out): a transposed view would send the attention that follows down a slower path
        return y.t().contiguous().reshape(*x.shape[:-1], self.out_features)

    @property
    def density(self) -> float:
        return self.weight.values().numel() / (self.in_features * self.out_features)


def magnitude_masks(model, density: float) -> dict:
    """Global magnitude masks keeping the `density` fraction of largest |w| over the prunable weights and biases
    of whatever layers `model` holds: weight pruning's own score and selection (`compress_lib.compression.weight`;
    exactly round(density * N) kept, ties broken by position), in one shot."""
    params = {n: p for n, p in model.named_parameters() if any(k in f".{n}" for k in PRUNABLE) and p.numel()}
    return select_global(magnitude_scores(params), density)


def apply_masks(model, masks: dict) -> None:
    """Zero the masked weights of `model` in place (the storage convention of weight pruning)."""
    zero_masked(dict(model.named_parameters()), masks)


def sparsify(model, masks: dict) -> nn.Module:
    """A copy of `model` with masks applied and every linear layer with a masked weight stored as CSR."""
    model = copy.deepcopy(model)
    apply_masks(model, masks)
    masked = {name.rsplit(".", 1)[0] for name in masks if name.endswith(".weight")}
    for name in masked:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, CSRLinear(getattr(parent, child)))
    return model.eval()


def sparse_vs_dense(
    model, densities=(0.5, 0.3, 0.2, 0.1, 0.05), seconds: float = 10.0, batch: int = 1, repeats: int = 3,
    warmup: int = 1, threads: int | None = None,
) -> list[dict]:
    """Time the dense forward (masks applied, dense kernels) against the CSR forward at each density.

    Returns one row per density: {"density", "macs_ratio" (closed form, masked / dense), "dense_s", "sparse_s",
    "speedup"}: times are medians of `repeats` turns in which the dense and the sparse model alternate, the
    speedup the median over the turns of dense time / sparse time.
    """
    model = model.eval()
    inputs = example_inputs(model, seconds, batch)
    dense_macs = closed_form_macs(model, seconds, batch)
    rows = []
    with num_threads(threads):
        for density in densities:
            masks = magnitude_masks(model, density)
            dense = copy.deepcopy(model)
            apply_masks(dense, masks)
            sparse = sparsify(model, masks)
            # dense and sparse take turns, so that both see the same machine load
            calls = [lambda: dense(**inputs), lambda: sparse(**inputs)]
            dense_t, sparse_t = time_interleaved(calls, "cpu", warmup, repeats)
            rows.append({
                "density": density,
                "macs_ratio": closed_form_macs(model, seconds, batch, masks=masks) / dense_macs,
                "dense_s": statistics.median(dense_t),
                "sparse_s": statistics.median(sparse_t),
                "speedup": paired_ratio(sparse_t, dense_t),  # median over turns of dense / sparse
            })
            del dense, sparse
    return rows


def crossover_density(rows: list[dict]) -> float | None:
    """The highest density at which the sparse forward beat the dense one (None if it never did)."""
    winning = [r["density"] for r in rows if r["speedup"] > 1.0]
    return max(winning) if winning else None


# -- the kernels alone: the linear layers of one Transformer layer ------------------------------------------------
LAYER_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2")


def layer_linear_inputs(layer, frames: int, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    """Random inputs of the six linear layers of a Transformer layer (LAYER_LINEARS order), (batch, frames, in)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, frames, layer.get_submodule(name).in_features, generator=g) for name in LAYER_LINEARS]


def sparse_linear_sweep(
    layer, densities=(1.0, 0.5, 0.3, 0.2, 0.1, 0.05), frames: int = 50, batch: int = 1, repeats: int = 10,
    warmup: int = 2, threads: int | None = None, seed: int = 0,
) -> list[dict]:
    """Time the six linear layers of one Transformer `layer` (query, key, value, output, fc1, fc2: every weight that
    weight pruning thins), magnitude-pruned to each density, with dense kernels (masks applied) and with CSR kernels.

    Every density and both kernels take turns in one interleaved pass (`time_interleaved`: one call of each, then
    the next round), so that machine drift during the sweep cannot reorder them. Returns one row per density:
    {"density" (asked), "kept" (non-zero fraction of the six weights), "dense_macs" / "sparse_macs" (weights
    times rows: what each kernel multiplies), "dense_s" / "sparse_s" (medians), "ratio" (median over the rounds of
    sparse / dense time: < 1 when the sparse kernel is faster), "ratio_q1" / "ratio_q3" (its quartiles over the
    rounds), "frames", "batch", "repeats", "warmup", "threads"}.
    """
    layer = layer.eval()
    inputs = layer_linear_inputs(layer, frames, batch, seed)
    rows_in = batch * frames
    weights = sum(layer.get_submodule(n).weight.numel() for n in LAYER_LINEARS)
    calls, info = [], []
    with num_threads(threads) as used:
        for density in densities:
            masks = magnitude_masks(layer, density)
            dense = copy.deepcopy(layer)
            apply_masks(dense, masks)
            sparse = sparsify(layer, masks)
            for model in (dense, sparse):
                linears = [model.get_submodule(n) for n in LAYER_LINEARS]
                calls.append(lambda linears=linears: [f(x) for f, x in zip(linears, inputs)])
            kept = sum(int(masks[f"{n}.weight"].sum()) for n in LAYER_LINEARS)
            info.append({"density": density, "kept": kept / weights, "dense_macs": rows_in * weights,
                         "sparse_macs": rows_in * kept})
        times = time_interleaved(calls, "cpu", warmup, repeats)
    rows = []
    for i, row in enumerate(info):
        dense_t, sparse_t = times[2 * i], times[2 * i + 1]
        ratios = [s / d for d, s in zip(dense_t, sparse_t)]
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
        rows.append({**row, "dense_s": statistics.median(dense_t), "sparse_s": statistics.median(sparse_t),
                     "ratio": paired_ratio(dense_t, sparse_t), "ratio_q1": q1, "ratio_q3": q3, "frames": frames,
                     "batch": batch, "repeats": repeats, "warmup": warmup, "threads": used})
    return rows


def sparse_crossover(rows: list[dict]) -> dict:
    """Where the sparse kernel starts to win, scanning from the sparsest density upwards.

    `rows`: dicts with "density" and "ratio" (sparse / dense time). Returns {"wins_at_or_below": the highest
    density of the unbroken run of wins (ratio < 1) that starts at the sparsest density (None when the sparse
    kernel loses there), "loses_at": the next density up, where it stops winning (None when it wins everywhere),
    "crossover_density": the density between those two at which the ratio crosses 1, interpolating log(ratio)
    linearly in density (None unless both exist)}. Unlike `crossover_density`, a lucky win at one high density
    amid losses does not move it.
    """
    ordered = sorted(rows, key=lambda r: r["density"])
    wins, loses = None, None
    for r in ordered:
        if r["ratio"] < 1.0:
            wins = r
        else:
            loses = r
            break
    crossover = None
    if wins is not None and loses is not None:
        lo, hi = math.log(wins["ratio"]), math.log(loses["ratio"])
        fraction = -lo / (hi - lo) if hi != lo else 0.0
        crossover = wins["density"] + fraction * (loses["density"] - wins["density"])
    return {"wins_at_or_below": wins["density"] if wins else None,
            "loses_at": loses["density"] if loses else None, "crossover_density": crossover}
