"""Where a forward pass spends its CPU time, by operator type, and the architectures of recorded compressed models.

    operator_category(name) -> str                      "aten::addmm" -> "matmul", "aten::gelu" -> "norm/activation"
    profile_operators(model, inputs, repeats=5) -> DataFrame   one row per top-level operator: calls, time, share
    profile_in_turns({name: (model, inputs)}, repeats=5) -> {name: DataFrame}   several models, taking turns
    by_category(operators) -> DataFrame                 the same summed per category (every category, shares sum to 1)
    runtime_breakdown(model, inputs, repeats=5) -> DataFrame   both of the above in one call
    sparsest_point(table, frame_ms, method=None, variant=None) -> Series   a trajectory's sparsest recorded point
    point_config(point, base) -> MelHuBERTConfig        the architecture of that point (per-layer heads, FFN units)

The paper explains GPU runtimes by kernel calls; on a CPU the analogue is the operators a forward pass calls.
`profile_operators` records `repeats` forward passes (after `warmup` untimed ones) with `torch.profiler` (CPU
activities) and attributes every aten operator's *self* CPU time to the top-level operator it runs under, the
call the model's Python code makes (`aten::linear`, whose time is mostly that of the `aten::addmm` it dispatches
to): the top-level operator's name decides the category, so the time of a fused attention kernel counts as
attention even where it runs matrix products inside. Calls are counted per forward pass, both top-level ones (as
`ops.operator_call_counts` does) and every aten operator including nested ones. An operator's time is the
median over the forwards of its time in one forward (robust to a forward that the machine's other work
interrupted), and the shares are of the sum of those medians, so the shares of the operators (and of the
categories) sum to 1; time outside any operator (Python, module calls) is not in them, but the profiled forward's
wall time is kept beside them (`forward_us` in the frame's `attrs`).
Counts depend only on the model's structure and the input's shape; times also on the machine, whose load drifts:
`profile_in_turns` profiles several models taking turns, one forward pass each per round, so that they share it.
"""

from __future__ import annotations

import numbers
import statistics
from collections import Counter
from contextlib import ExitStack

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from compress_lib.config import MelHuBERTConfig
from compress_lib.efficiency.ops import quiet_native_stderr
from compress_lib.efficiency.runtime import evaluating_on
from compress_lib.threads import num_threads
from compress_lib.errors import CompressLibError

CATEGORIES = ("matmul", "attention", "convolution", "norm/activation", "other")

# Exact aten operator names (without the "aten::" prefix) of each category; anything else is "other" (views,
# reshapes, transposes, residual additions, copies, dropout, which is a no-op call in evaluation mode).
_NAMES = {
    "matmul": {"linear", "addmm", "mm", "bmm", "matmul", "baddbmm", "addbmm", "addmv", "mv", "dot", "einsum",
               "_addmm_activation", "addmm_", "_sparse_addmm", "_sparse_mm", "sparse_mm", "_sparse_csr_mm",
               "_sparse_csr_addmm", "mkldnn_linear", "_mkl_linear", "tensordot"},
    "attention": {"scaled_dot_product_attention", "softmax", "_softmax", "_safe_softmax", "log_softmax",
                  "_log_softmax"},
    "convolution": {"conv1d", "conv2d", "convolution", "_convolution", "mkldnn_convolution", "conv_transpose1d",
                    "_nnpack_spatial_convolution", "_slow_conv2d_forward", "thnn_conv2d", "slow_conv_dilated2d"},
    "norm/activation": {"layer_norm", "native_layer_norm", "group_norm", "native_group_norm", "batch_norm",
                        "native_batch_norm", "_native_batch_norm_legit", "_weight_norm", "_weight_norm_interface",
                        "norm", "linalg_vector_norm", "rms_norm", "gelu", "relu", "relu_", "silu", "tanh",
                        "sigmoid", "glu"},
}
_PREFIXES = {"_scaled_dot_product_": "attention", "_flash_attention": "attention", "_efficient_attention": "attention"}


def operator_category(name: str) -> str:
    """The category of an operator name ("aten::addmm", or "addmm"): one of CATEGORIES.

    matmul: linear layers and matrix products (dense or sparse); attention: scaled dot-product attention and its
    kernels, softmax; convolution: the convolutions (MelHuBERT's positional convolution); norm/activation:
    LayerNorm, GroupNorm, weight norm, GELU and other activations; other: everything else.
    """
    if not isinstance(name, str):
        raise CompressLibError(f"an operator name must be a string, got {name!r}")
    short = name.removeprefix("aten::")
    for category, names in _NAMES.items():
        if short in names:
            return category
    for prefix, category in _PREFIXES.items():
        if short.startswith(prefix):
            return category
    return "other"


FORWARD_LABEL = "compress_lib.breakdown.forward"  # the profiler range around each recorded forward pass


def _is_aten(event) -> bool:
    return event is not None and event.name.startswith("aten::")


def _top_level(event):
    """The outermost aten operator that `event` runs under (itself when it is top-level)."""
    while _is_aten(event.cpu_parent):
        event = event.cpu_parent
    return event


def _call(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(*inputs)


def profile_in_turns(runs: dict, repeats: int = 5, warmup: int = 1, threads: int | None = None) -> dict:
    """`profile_operators` for several models at once, profiled in turns: one forward pass of each model, then the
    next round (each round starting one model later), all in one profiler session, so that a shared machine's
    drift over the minutes of the session reaches every model alike. `runs`: {name: (model, inputs)}; returns
    {name: operator table} in that order.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise CompressLibError(f"repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise CompressLibError(f"warmup must be an integer >= 0, got {warmup!r}")
    names = list(runs)
    labels = {f"{FORWARD_LABEL}.{i}": i for i in range(len(names))}  # the profiler range of each model's forwards
    with num_threads(threads) as used, ExitStack() as restore, torch.inference_mode():
        for model, _ in runs.values():
            restore.enter_context(evaluating_on(model, "cpu"))
        for _ in range(warmup):
            for model, inputs in runs.values():
                _call(model, inputs)
        order = list(zip(labels, runs.values()))
        with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for r in range(repeats):
                k = r % len(order)  # each round starts one model later: no model always follows the same one
                for label, (model, inputs) in order[k:] + order[:k]:
                    with record_function(label):
                        _call(model, inputs)
    events = prof.events()
    calls, nested, per_forward = ([Counter() for _ in names] for _ in range(3))
    op_time = [Counter() for _ in names]  # (forward's event id, top-level operator) -> its self time in that forward
    for event in events:
        if not _is_aten(event):
            continue
        forward = event.cpu_parent
        while forward is not None and forward.name not in labels:
            forward = forward.cpu_parent
        if forward is None:
            continue
        i, top = labels[forward.name], _top_level(event)
        nested[i][top.name] += 1
        op_time[i][forward.id, top.name] += event.self_cpu_time_total
        per_forward[i][forward.id] += event.self_cpu_time_total
        if top is event:
            calls[i][top.name] += 1
    walls = [[e.cpu_time_total for e in events if e.name == label] for label in labels]
    tables = {}
    for i, name in enumerate(names):
        forwards = list(per_forward[i])
        median_us = {op: statistics.median(op_time[i][f, op] for f in forwards) for op in calls[i]}
        total = sum(median_us.values())
        rows = [{"operator": op, "category": operator_category(op), "calls": calls[i][op] / repeats,
                 "nested_calls": nested[i][op] / repeats, "cpu_time_us": median_us[op],
                 "share": median_us[op] / total if total else 0.0} for op in calls[i]]
        table = pd.DataFrame(rows, columns=["operator", "category", "calls", "nested_calls", "cpu_time_us", "share"])
        table = table.sort_values(["cpu_time_us", "operator"], ascending=[False, True], ignore_index=True)
        table.attrs.update(
            forward_us=statistics.mean(walls[i]) if walls[i] else float("nan"),
            forward_us_median=statistics.median(walls[i]) if walls[i] else float("nan"),
            operator_us=total,
            operator_us_mean=statistics.mean(per_forward[i].values()) if forwards else 0.0,
            operator_us_median=statistics.median(per_forward[i].values()) if forwards else 0.0,
            repeats=repeats, warmup=warmup, threads=used)
        tables[name] = table
    return tables


def profile_operators(model, inputs, repeats: int = 5, warmup: int = 1, threads: int | None = None) -> pd.DataFrame:
    """Operator calls and self CPU time of `repeats` forward passes of `model(**inputs)` (CPU, inference mode).

    `inputs`: keyword arguments of the forward (e.g. `example_inputs(model, 1.0)`), or a tuple of positional ones.
    One row per top-level aten operator, most time first: operator, category, calls (top-level calls per forward),
    nested_calls (aten calls per forward, those it dispatches to included), cpu_time_us (the self time of the
    operator and of every aten operator under it in one forward: the median over the forwards, so that a forward
    in which the machine was busy elsewhere does not count) and share (of the summed medians; the shares sum to 1).
    `attrs` holds operator_us (the summed medians), operator_us_mean and operator_us_median (mean and median over
    the forwards of their summed operator time), forward_us and forward_us_median (mean and median wall time of a
    profiled forward: operators and what runs between them), repeats, warmup and threads.
    """
    return profile_in_turns({"model": (model, inputs)}, repeats, warmup, threads)["model"]


def by_category(operators: pd.DataFrame) -> pd.DataFrame:
    """`profile_operators`' table summed per category: one row per category of CATEGORIES, in that order (zeros
    for a category the model never calls); columns category, calls, nested_calls, cpu_time_us, share."""
    sums = operators.groupby("category")[["calls", "nested_calls", "cpu_time_us"]].sum()
    table = sums.reindex(list(CATEGORIES), fill_value=0).rename_axis("category").reset_index()
    total = table["cpu_time_us"].sum()
    table["share"] = table["cpu_time_us"] / total if total else 0.0
    table.attrs.update(operators.attrs)
    return table


def runtime_breakdown(model, inputs, repeats: int = 5, warmup: int = 1, threads: int | None = None) -> pd.DataFrame:
    """The share of a forward's operator time (and its calls) per category: `by_category(profile_operators(...))`."""
    return by_category(profile_operators(model, inputs, repeats, warmup, threads))


# -- the architecture of a recorded trajectory point ---------------------------------------------------------------
def parse_layers(value) -> list[int]:
    """Per-layer counts as the trajectory tables record them ("4 4 3", or a number for one layer, or a list)."""
    if isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):  # one layer, read by pandas as a number
        parts = [value]
    elif isinstance(value, str):
        parts = value.split()
    else:
        raise CompressLibError(f"per-layer counts must be a space-separated string such as '4 4 3', got {value!r}")
    try:
        counts = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise CompressLibError(f"per-layer counts must be integers, got {value!r}") from None
    if not counts or any(c < 0 or c != float(p) for c, p in zip(counts, parts)):
        raise CompressLibError(f"per-layer counts must be one or more integers >= 0, got {value!r}")
    return counts


def sparsest_point(table: pd.DataFrame, frame_ms: int, method: str | None = None,
                   variant: str | None = None) -> pd.Series:
    """The row of a trajectory table (`compress_lib.trajectory_results.trajectory_table`) with the lowest density
    at `frame_ms`, among the rows of `method` and `variant` when given (ties: the later point). Raises if there is
    none."""
    rows = table[table["frame_ms"].astype(int) == int(frame_ms)]
    if method is not None:
        rows = rows[rows["method"] == method]
    if variant is not None:
        rows = rows[rows["variant"] == variant] if "variant" in rows else rows.iloc[:0]
    if rows.empty:
        which = ", ".join(f"{k} {v!r}" for k, v in (("method", method), ("variant", variant)) if v is not None)
        raise CompressLibError(f"the table has no point at {frame_ms} ms{' with ' + which if which else ''}")
    lowest = rows[rows["density"] == rows["density"].min()]
    return lowest.iloc[-1]


def point_config(point, base: MelHuBERTConfig) -> MelHuBERTConfig:
    """The configuration of a recorded point: `base` (the unpruned model of the run's preset and frame rate) with
    the point's per-layer heads and FFN units (`layer_heads`, `layer_ffn_dims`: a trajectory row or a dict).
    Build the model with `MelHuBERT(point_config(...))`, the library's own constructor."""
    heads, ffn = parse_layers(point["layer_heads"]), parse_layers(point["layer_ffn_dims"])
    if len(heads) != len(ffn):
        raise CompressLibError(f"the point records {len(heads)} layers of heads but {len(ffn)} of FFN units")
    return base.replace(layer_heads=heads, layer_ffn_dims=ffn)
