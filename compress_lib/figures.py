"""The study's result figures: quality against density, depth and cost (the paper's Figures 1 to 3).

Every figure takes rows of the results table (`summary.csv`, as `compress_lib.results.summary_frame` reads it;
notebook 08 adds a `layers` column) and draws them in the book's visual language (`compress_lib.figure_style`):

- each method in its own colour and marker, the frame rate by dash and fill;
- a trajectory is drawn in density order, densest first, so its line never zigzags; an ablation variant (a
  model named with a parenthesised variant, e.g. "distill-0.5 (student, masked input)") is its own trace;
- panels are stacked so that each is as wide as the page, the legend sits under the plot;
- a y axis fits the trajectories and the dense model; a reference (random-init twin, log-Mel features) outside
  that range is named at the panel's edge with its value instead of stretching the axis.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compress_lib import figure_style

METRIC_LABELS = {"per": "PER (%)", "sid_accuracy": "SID accuracy (%)"}
REFERENCES = ("dense", "random-init", "fbank")  # drawn as horizontal lines, not as trajectories
REFERENCE_DASH = {"dense": "dash", "random-init": "dot", "fbank": "dashdot"}
PANEL_HEIGHT_PX = 300
HOVER_COLUMNS = ["model", "frame_ms", "density", "layers", "per", "sid_accuracy", "macs_per_second",
                 "nonzero_params", "real_time_factor"]
HOVER = ("%{customdata[0]}, %{customdata[1]} ms<br>density %{customdata[2]:.4g}<br>PER %{customdata[4]:.2f} %"
         "<br>SID accuracy %{customdata[5]:.2f} %<br>MACs/s %{customdata[6]:,.0f}<br>non-zero parameters "
         "%{customdata[7]:,.0f}<br>real-time factor %{customdata[8]:.4g}<extra></extra>")


def is_variant(model: str) -> bool:
    """Whether a model name marks an ablation variant, e.g. 'distill-0.5 (student, masked input)'."""
    return " (" in str(model)


def variant_of(model: str) -> str:
    """'student, masked input' for 'distill-0.5 (student, masked input)'."""
    return str(model).split(" (", 1)[1].rstrip(")")


def hover_data(rows: pd.DataFrame):
    """The columns HOVER reads, missing ones as NaN."""
    return rows.reindex(columns=HOVER_COLUMNS).to_numpy()


def fitted_range(values, pad_fraction: float = 0.08, log: bool = False) -> list[float]:
    """An axis range around `values` with a margin (in log10 units for a log axis)."""
    values = pd.Series(list(values), dtype=float).dropna()
    if log:
        values = values[values > 0].map(math.log10)
    low, high = float(values.min()), float(values.max())
    pad = max((high - low) * pad_fraction, 0.05 if log else 0.5)
    return [low - pad, high + pad]


def add_trajectories(fig: go.Figure, table: pd.DataFrame, x: str, y: str, row: int, col: int,
                     showlegend: bool, log_x: bool = False, start: pd.DataFrame | None = None) -> None:
    """Each method's main trajectory per frame rate (density order, lines and markers), each ablation variant as
    its own trace (markers only, one shape per variant). `start`: rows (one per frame rate, e.g. the dense model)
    that begin every main trajectory of their frame rate, so that a line shows where compression started."""
    start = start.dropna(subset=[x, y]) if start is not None else table.iloc[:0]
    table = table[~table["method"].isin(REFERENCES)].dropna(subset=[x, y])
    main, variants = table[~table["model"].map(is_variant)], table[table["model"].map(is_variant)]
    for method in [*figure_style.METHOD_STYLES, *sorted(set(table["method"]) - set(figure_style.METHOD_STYLES))]:
        for rate in sorted(set(table["frame_ms"]), reverse=True):
            rows = main[(main["method"] == method) & (main["frame_ms"] == rate)].sort_values("density",
                                                                                          ascending=False)
            if len(rows):
                rows = pd.concat([start[start["frame_ms"] == rate], rows], ignore_index=True)
                fig.add_scatter(x=rows[x], y=rows[y], mode="lines+markers", name=figure_style.label(method, rate),
                                legendgroup=f"{method}{rate}", showlegend=showlegend,
                                marker=figure_style.marker(method, rate), line=figure_style.line(method, rate),
                                customdata=hover_data(rows), hovertemplate=HOVER, row=row, col=col)
            ablations = variants[(variants["method"] == method) & (variants["frame_ms"] == rate)]
            for i, (variant, rows) in enumerate(ablations.groupby(ablations["model"].map(variant_of), sort=True)):
                symbol = figure_style.VARIANT_SYMBOLS[i % len(figure_style.VARIANT_SYMBOLS)]
                name = f"{figure_style.label(method, rate)} ({variant})"
                fig.add_scatter(x=rows[x], y=rows[y], mode="markers", name=name, legendgroup=name,
                                showlegend=showlegend, marker=figure_style.marker(method, rate, symbol=symbol),
                                customdata=hover_data(rows), hovertemplate=HOVER, row=row, col=col)


def add_references(fig: go.Figure, table: pd.DataFrame, metric: str, y_range: list[float], row: int, col: int,
                   frame_rates, showlegend: bool) -> None:
    """The dense model, random-init twin and log-Mel features of `frame_rates` as horizontal lines; one outside
    `y_range` is named at the panel's top or bottom edge with its value instead."""
    refs = table[table["method"].isin(REFERENCES) & table["frame_ms"].isin(list(frame_rates))].dropna(subset=[metric])
    outside = []
    for ref in refs.itertuples():
        value, rate = float(getattr(ref, metric)), int(ref.frame_ms)
        name = f"{figure_style.label(ref.method, rate)}"
        if y_range[0] <= value <= y_range[1]:
            fig.add_hline(y=value, line=dict(color=figure_style.style(ref.method).colour,
                                             dash=REFERENCE_DASH[ref.method], width=1), row=row, col=col)
        else:
            outside.append((value > y_range[1], f"{name}: {value:.1f} {'↑' if value > y_range[1] else '↓'}"))
        fig.add_scatter(x=[None], y=[None], mode="lines", name=name, legendgroup=f"ref-{ref.method}{rate}",
                        showlegend=showlegend, line=dict(color=figure_style.style(ref.method).colour,
                                                         dash=REFERENCE_DASH[ref.method], width=1),
                        row=row, col=col)
    for above in (True, False):
        texts = [t for a, t in outside if a == above]
        if texts:
            fig.add_annotation(text="; ".join(texts), xref="x domain", yref="y domain", x=1, xanchor="right",
                               y=1 if above else 0, yanchor="top" if above else "bottom", showarrow=False,
                               font=dict(size=10, color="#555555"), bgcolor="rgba(255,255,255,0.8)",
                               row=row, col=col)


def quality_range(table: pd.DataFrame, metric: str) -> list[float]:
    """A y range that fits the trajectories and the dense model (the other references may fall outside)."""
    shown = table[~table["method"].isin(("random-init", "fbank"))][metric]
    return fitted_range(shown)


def quality_figure(table: pd.DataFrame, methods, x: str, x_title: str, title: str, reverse_x: bool = False,
                   dtick_x: float | None = None) -> go.Figure:
    """PER (top row) and SID accuracy (bottom row) of `methods` against `x`, one column per frame rate (20 ms
    first), with the references of that rate; each trajectory starts at the dense model it compresses."""
    rates = sorted(set(table["frame_ms"].dropna().astype(int)), reverse=True) or [20]
    metrics = [m for m in METRIC_LABELS if table[m].notna().any()] or ["per"]
    shown = table[table["method"].isin([*methods, *REFERENCES])]
    fig = make_subplots(rows=len(metrics), cols=len(rates), horizontal_spacing=0.08, vertical_spacing=0.12,
                        subplot_titles=[f"{METRIC_LABELS[m].split(' (')[0]}, {r} ms" for m in metrics for r in rates])
    for r, metric in enumerate(metrics, start=1):
        y_range = quality_range(shown[shown["method"].isin([*methods, "dense"])], metric)
        for c, rate in enumerate(rates, start=1):
            at_rate = shown[shown["frame_ms"] == rate]
            add_trajectories(fig, at_rate, x, metric, r, c, showlegend=r == 1,
                             start=at_rate[at_rate["method"] == "dense"])
            add_references(fig, at_rate, metric, y_range, r, c, [rate], showlegend=r == 1)
            fig.update_yaxes(range=y_range, row=r, col=c, title_text=METRIC_LABELS[metric] if c == 1 else None)
            fig.update_xaxes(autorange="reversed" if reverse_x else True, dtick=dtick_x, row=r, col=c,
                             title_text=x_title if r == len(metrics) else None)
    fig.update_layout(title=title, height=PANEL_HEIGHT_PX * len(metrics) + 220, template="plotly_white",
                      margin=dict(l=60, r=20, t=70, b=40))
    figure_style.legend_below(fig, y=-0.1)
    return fig


COST_MEASURES = {"macs_per_second": "MACs per second of speech", "nonzero_params": "parameters (non-zero)",
                 "real_time_factor": "real-time factor (CPU)"}


def cost_figure(table: pd.DataFrame, metric: str = "per", title: str = "") -> go.Figure:
    """The paper's Figure 3: `metric` against each measure of cost (one row each, log x), every method and frame
    rate, each trajectory from the dense model it compresses, the dense models also as points of their own."""
    table = table[table["method"] != "fbank"].dropna(subset=[metric])
    fig = make_subplots(rows=len(COST_MEASURES), cols=1, vertical_spacing=0.09,
                        subplot_titles=list(COST_MEASURES.values()))
    y_range = quality_range(table[table["method"] != "random-init"], metric)
    for r, measure in enumerate(COST_MEASURES, start=1):
        with_cost = table.dropna(subset=[measure])
        dense = with_cost[with_cost["method"] == "dense"]
        add_trajectories(fig, with_cost[with_cost["method"] != "random-init"], measure, metric, r, 1,
                         showlegend=r == 1, start=dense)
        for rate in sorted(set(dense["frame_ms"]), reverse=True):  # the dense model as a point of its own
            rows = dense[dense["frame_ms"] == rate]
            fig.add_scatter(x=rows[measure], y=rows[metric], mode="markers", name=figure_style.label("dense", rate),
                            legendgroup=f"dense{rate}", showlegend=r == 1, marker=figure_style.marker("dense", rate, 11),
                            customdata=hover_data(rows), hovertemplate=HOVER, row=r, col=1)
        fig.update_xaxes(type="log", row=r, col=1)
        fig.update_yaxes(range=y_range, title_text=METRIC_LABELS[metric], row=r, col=1)
    fig.update_layout(title=title, height=PANEL_HEIGHT_PX * len(COST_MEASURES) + 260, template="plotly_white",
                      margin=dict(l=60, r=20, t=70, b=40))
    figure_style.legend_below(fig, y=-0.07)
    return fig


def layer_weight_figure(weights: pd.DataFrame, methods=("dense", "random-init"), title: str = "") -> go.Figure:
    """The probes' learnt layer weights (softmax over the hidden states: 0 is the projected input, l the output of
    layer l), one panel per task, one line per model of `methods` and frame rate. Columns of `weights`: model,
    method, frame_ms, task, layer, weight."""
    tasks = [t for t in ("pr", "sid") if t in set(weights["task"])]
    fig = make_subplots(rows=len(tasks) or 1, cols=1, vertical_spacing=0.16,
                        subplot_titles=[{"pr": "phone recognition", "sid": "speaker identification"}[t] for t in tasks])
    for r, task in enumerate(tasks, start=1):
        for method in methods:
            for rate in sorted(set(weights["frame_ms"]), reverse=True):
                rows = weights[(weights["task"] == task) & (weights["method"] == method)
                               & (weights["frame_ms"] == rate)].sort_values("layer")
                if len(rows):
                    fig.add_scatter(x=rows["layer"], y=rows["weight"], mode="lines+markers",
                                    name=figure_style.label(method, rate), legendgroup=f"{method}{rate}",
                                    showlegend=r == 1, line=figure_style.line(method, rate),
                                    marker=figure_style.marker(method, rate),
                                    hovertemplate=f"{method}, {rate} ms, hidden state %{{x}}: weight %{{y:.3f}}"
                                                  "<extra></extra>", row=r, col=1)
        fig.update_yaxes(title_text="layer weight", rangemode="tozero", row=r, col=1)
        fig.update_xaxes(dtick=1, row=r, col=1, title_text="hidden state (0: input projection, l: layer l)"
                         if r == len(tasks) else None)
    fig.update_layout(title=title, height=PANEL_HEIGHT_PX * max(len(tasks), 1) + 200, template="plotly_white",
                      margin=dict(l=60, r=20, t=70, b=40))
    figure_style.legend_below(fig, y=-0.15)
    return fig


RUNTIME_LABELS = {"eager": "eager PyTorch", "onnxruntime": "ONNX Runtime", "onnxruntime-int8": "ONNX Runtime, int8"}


def runtime_figure(table: pd.DataFrame, x: str, x_title: str, title: str = "", log_x: bool = False) -> go.Figure:
    """One panel per runtime (side by side, one y axis): each model's real-time factor relative to the dense
    model's in eager PyTorch against `x` (a column of `table`, e.g. its MACs or bytes relative to the dense
    model's), every method in its style, each trajectory from the dense model. `table`: rows of the deployment
    table (`compress_lib.deployment`) with `relative_runtime` and `x` columns added."""
    runtimes = [r for r in RUNTIME_LABELS if r in set(table["runtime"])]
    fig = make_subplots(rows=1, cols=len(runtimes), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[RUNTIME_LABELS[r] for r in runtimes])
    shown = set()
    for c, runtime in enumerate(runtimes, start=1):
        rows = table[table["runtime"] == runtime]
        for (method, rate), group in rows.groupby(["method", "frame_ms"], sort=False):
            dense = rows[(rows["method"] == "dense") & (rows["frame_ms"] == rate)]
            line_rows = pd.concat([dense, group.sort_values("density", ascending=False)]) if method != "dense" else group
            name = figure_style.label(method, rate)
            fig.add_scatter(
                x=line_rows[x], y=line_rows["relative_runtime"], mode="lines+markers", name=name, legendgroup=name,
                showlegend=name not in shown, marker=figure_style.marker(method, rate),
                line=figure_style.line(method, rate), customdata=line_rows[["model", "real_time_factor"]].to_numpy(),
                hovertemplate=("%{customdata[0]}<br>" + RUNTIME_LABELS[runtime] + "<br>x %{x:.3g}<br>runtime / dense "
                               "eager %{y:.3f}<br>real-time factor %{customdata[1]:.4g}<extra></extra>"),
                row=1, col=c)
            shown.add(name)
        fig.add_scatter(x=[0.01, 1.2], y=[0.01, 1.2], mode="lines", line=dict(color=figure_style.REFERENCE_COLOUR,
                        dash="dash", width=1), name="runtime proportional to x", legendgroup="diag",
                        showlegend=c == 1, hoverinfo="skip", row=1, col=c)
        fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear", row=1, col=c,
                         range=None if log_x else [0, 1.1])
    fig.update_yaxes(title_text="runtime / dense model's in eager PyTorch", row=1, col=1, rangemode="tozero")
    fig.update_layout(title=title, height=520, template="plotly_white", margin=dict(l=70, r=20, t=80, b=40))
    figure_style.legend_below(fig, y=-0.22)
    return fig
