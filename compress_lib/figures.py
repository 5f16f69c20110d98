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

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compress_lib import figure_style
from compress_lib.efficiency import CATEGORIES
from compress_lib.findings import method_rate_order
from compress_lib.prior_work import CITED

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
    """One panel per runtime, stacked (each the page's width; one x axis): each model's real-time factor relative
    to the dense model's in eager PyTorch against `x` (a column of `table`, e.g. its MACs or bytes relative to the
    dense model's), every method in its style, each trajectory from the dense model. `table`: rows of the
    deployment table (`compress_lib.deployment`) with `relative_runtime` and `x` columns added."""
    runtimes = [r for r in RUNTIME_LABELS if r in set(table["runtime"])]
    fig = make_subplots(rows=len(runtimes) or 1, cols=1, shared_xaxes=True, vertical_spacing=0.07,
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
                row=c, col=1)
            shown.add(name)
        fig.add_scatter(x=[0.01, 1.2], y=[0.01, 1.2], mode="lines", line=dict(color=figure_style.REFERENCE_COLOUR,
                        dash="dash", width=1), name="runtime proportional to x", legendgroup="diag",
                        showlegend=c == 1, hoverinfo="skip", row=c, col=1)
        fig.update_xaxes(type="log" if log_x else "linear", row=c, col=1, range=None if log_x else [0, 1.1])
        fig.update_yaxes(title_text="runtime / dense eager", row=c, col=1, rangemode="tozero")
    fig.update_xaxes(title_text=x_title, row=len(runtimes) or 1, col=1)
    fig.update_layout(title=title, height=260 * max(len(runtimes), 1) + 200, template="plotly_white",
                      margin=dict(l=70, r=20, t=80, b=40))
    figure_style.legend_below(fig, y=-0.12)
    return fig


# -- notebook 10: the published models -------------------------------------------------------------------------
FIGURE4_AXES = {  # column of the measure -> axis title
    "macs_per_second": "MACs per second of speech",
    "params": "parameters (inference path)",
    "real_time_factor": "real-time factor (CPU)",
}


def prior_hover(row: pd.Series, metric: str, label: str) -> str:
    return (f"<b>{row['model']}</b><br>{label}: {row['published_' + metric]:.2f} % ({CITED})"
            f"<br>measured: {row['params'] / 1e6:.2f} M parameters, {row['macs_per_second'] / 1e9:.3f} GMACs/s, "
            f"RTF {row['real_time_factor']:.4f} (CPU), {row['operator_calls']} operator calls"
            f"<br>layers: {row['layers']}, published parameters: {row['published_params'] / 1e6:.2f} M")


def our_hover(row: pd.Series, metric: str, label: str, preset: str) -> str:
    rtf = f"RTF {row['real_time_factor']:.4f}" if pd.notna(row["real_time_factor"]) else "RTF not measured"
    return (f"<b>{row['model']}</b> ({row['method']}, {row['frame_ms']:.0f} ms)<br>{label}: {row[metric]:.2f} % "
            f"(measured by us on the stand-in corpus, {preset} preset; 08_downstream)"
            f"<br>{row['params_shown'] / 1e6:.3f} M parameters, {row['macs_per_second'] / 1e9:.4f} GMACs/s, {rtf}"
            f"<br>density {row['density']:.3f}")


def figure4(prior: pd.DataFrame, ours: pd.DataFrame, references: pd.DataFrame, metric: str = "per",
            label: str = "PER", preset: str = "study") -> go.Figure:
    """The paper's Figure 4, three panels stacked: the published `metric` (cited) of each prior-work model against
    our measurements of it (MACs, parameters, real-time factor; `prior`: rows of notebook 10's table); our
    evaluated models (`ours`, summary rows with `params_shown`) as further points; the paper-size MelHuBERT and
    its truncations (`references`) as dashed vertical lines."""
    fig = make_subplots(rows=len(FIGURE4_AXES), cols=1, subplot_titles=list(FIGURE4_AXES.values()), vertical_spacing=0.11)
    ours_x = {"macs_per_second": "macs_per_second", "params": "params_shown", "real_time_factor": "real_time_factor"}
    values = pd.concat([prior["published_" + metric], ours[metric]]).dropna()
    pad = 0.05 * (values.max() - values.min()) + 0.5
    y_span = [values.min() - pad, values.max() + pad]  # the reference lines' extent
    step = (y_span[1] - y_span[0]) / 15  # the reference labels are staggered by this much
    for col, key in enumerate(FIGURE4_AXES, start=1):
        panel = prior.sort_values(key)  # labels alternate above and below the points, left to right
        fig.add_scatter(
            x=panel[key], y=panel["published_" + metric], mode="markers+text", text=panel["model"],
            textposition=["top center", "bottom center"] * len(panel), textfont=dict(size=10),
            marker=figure_style.marker("zoo", size=11),
            name=f"published models ({label} cited)", legendgroup="prior", showlegend=col == 1,
            hovertext=[prior_hover(r, metric, label) for _, r in panel.iterrows()],
            hovertemplate="%{hovertext}<extra></extra>", row=col, col=1,
        )
        shown = ours.dropna(subset=[ours_x[key], metric])
        for method, rate in method_rate_order({r: shown[shown["frame_ms"] == r] for r in sorted(
                set(shown["frame_ms"]), reverse=True)}):
            rows_ = shown[(shown["method"] == method) & (shown["frame_ms"] == rate)]
            fig.add_scatter(
                x=rows_[ours_x[key]], y=rows_[metric], mode="markers", name=f"ours: {figure_style.label(method, rate)}",
                legendgroup=f"{method}{rate}", showlegend=col == 1, marker=figure_style.marker(method, rate, size=8),
                hovertext=[our_hover(r, metric, label, preset) for _, r in rows_.iterrows()],
                hovertemplate="%{hovertext}<extra></extra>", row=col, col=1,
            )
        for i, (_, ref) in enumerate(references.iterrows()):  # a vertical line where each reference model sits
            short = ref["model"].replace(" (paper size)", "").replace("MelHuBERT-", "Mel-")
            fig.add_scatter(
                x=[ref[key]] * 2, y=[y_span[0], y_span[1] - i * step], mode="lines+text", text=["", short],
                textposition="top center", textfont=dict(size=9, color="grey"),
                line=dict(dash="dash", color="grey", width=1), name=f"MelHuBERT, paper size (no {label})",
                legendgroup="reference", showlegend=col == 1 and i == 0,
                hovertemplate=f"{ref['model']}<br>{FIGURE4_AXES[key]}: {ref[key]:,.4g} (measured; no {label})<extra></extra>",
                row=col, col=1,
            )
        xs = pd.concat([prior[key], ours[ours_x[key]], references[key]]).dropna()
        xs = np.log10(xs[xs > 0].astype(float))
        fig.update_xaxes(type="log", range=[xs.min() - 0.12, xs.max() + 0.12], row=col, col=1)
        fig.update_yaxes(title_text=f"{label} (%)", row=col, col=1)
    fig.update_layout(title=f"{label} against MACs, parameters and real-time factor (the paper's Figure 4)",
                      height=1150, margin=dict(l=60, r=20, t=70, b=40), template="plotly_white")
    figure_style.legend_below(fig, y=-0.06)
    return fig


def mac_parts_figure(t: pd.DataFrame) -> go.Figure:
    """Stacked bars: MACs per second of each model by part; hover gives the share of the total."""
    parts = {
        "wav CNN": t["cnn_macs_per_second"],
        "rest of the front-end": t["front_end_macs_per_second"] - t["cnn_macs_per_second"],
        "attention": t["attention_macs_per_second"], "feed-forward": t["ffn_macs_per_second"],
    }
    fig = go.Figure()
    for part, values in parts.items():
        fig.add_bar(x=t["model"], y=values, name=part, customdata=values / t["macs_per_second"],
                    hovertemplate="%{x}<br>" + part + ": %{y:,} MACs/s (%{customdata:.1%})<extra></extra>")
    fig.update_layout(barmode="stack", title="MACs per second of speech, by part", yaxis_title="MACs per second",
                      height=460, legend_title="part", margin=dict(l=60, r=20, t=60, b=120))
    return fig


# -- notebook 12: sparse kernels and the runtime breakdown -----------------------------------------------------
# model size -> colour of its sparse-kernel curve (the frame rate is the dash, as elsewhere)
SIZE_COLOURS = {"smoke": "#444444", "lab": "#444444", "study": "#000000", "paper": "#0072B2"}


def crossover_figure(kernels: pd.DataFrame, crossover: pd.DataFrame) -> go.Figure:
    """Notebook 12: sparse time / dense time against density per model size and frame rate (log y), each
    crossover density starred."""
    fig = go.Figure()
    for (size, rate), group in kernels.groupby(["size", "frame_ms"], sort=False):
        group = group.sort_values("density")
        colour = SIZE_COLOURS.get(size, "#444444")
        fig.add_scatter(
            x=group["density"], y=group["ratio"], mode="lines+markers", name=f"{size} size, {rate} ms",
            line=dict(color=colour, dash=figure_style.FRAME_RATE_DASH.get(int(rate), "solid"), width=1.5),
            marker=dict(color=colour, size=figure_style.MARKER_SIZE,
                        symbol="circle-open" if int(rate) in figure_style.OPEN_RATES else "circle"),
            legendgroup=f"{size}{rate}", customdata=group[["kept", "dense_s", "sparse_s"]].to_numpy() * [1, 1e3, 1e3],
            hovertemplate=(f"{size} size, {rate} ms<br>density %{{x:.3g}} (kept %{{customdata[0]:.3f}})"
                           "<br>sparse / dense: %{y:.3f}<br>dense %{customdata[1]:.3f} ms, sparse "
                           "%{customdata[2]:.3f} ms<extra></extra>"))
    marked = crossover.dropna(subset=["crossover_density"])
    for row in marked.itertuples():
        fig.add_scatter(x=[row.crossover_density], y=[1.0], mode="markers", legendgroup=f"{row.size}{row.frame_ms}",
                        marker=dict(symbol="star", size=15, color=SIZE_COLOURS.get(row.size, "#444444"),
                                    line=dict(color="white", width=1)),
                        name=f"crossover, {row.size} size, {row.frame_ms} ms", showlegend=False,
                        hovertemplate=(f"{row.size} size, {row.frame_ms} ms: the sparse kernel wins below density "
                                       f"{row.crossover_density:.3f}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color=figure_style.REFERENCE_COLOUR, dash="dash", width=1))
    fig.add_annotation(text="same time: below, the sparse kernel is faster", x=0.01, xref="paper", y=0, yref="y",
                       yanchor="top", xanchor="left", showarrow=False, font=dict(color="#666666"))  # log axis: log10(1)
    fig.update_xaxes(title_text="density (fraction of weights kept)", autorange="reversed")
    fig.update_yaxes(title_text="sparse time / dense time (log scale)", type="log")
    fig.update_layout(title="CSR against dense kernels: the six linear layers of one Transformer layer (CPU)",
                      height=500, template="plotly_white", margin=dict(l=70, r=20, t=60, b=40))
    figure_style.legend_below(fig, y=-0.18)
    return fig


CATEGORY_COLOURS = dict(zip(CATEGORIES, ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#BBBBBB")))  # Okabe-Ito


def breakdown_figure(breakdown: pd.DataFrame, title: str, preset: str) -> go.Figure:
    """Top: the share of each category, every model; bottom: the milliseconds, the models of this preset's size
    (a paper-size reference would dwarf them)."""
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.2,
                        subplot_titles=["share of operator time",
                                        f"operator time per forward pass (ms), {preset}-size models"])
    own_size = breakdown[breakdown["method"] != "dense, paper size"]
    for category in CATEGORIES:
        for row, table, key, scale, fmt in ((1, breakdown, "share", 1, ".1%"), (2, own_size, "cpu_time_us", 1e-3,
                                                                                   ".3f")):
            part = table[table["category"] == category]
            values = part[key] * scale
            fig.add_bar(x=part["model"], y=values, name=category, legendgroup=category, showlegend=row == 1,
                        marker_color=CATEGORY_COLOURS[category], customdata=part[["calls", "nested_calls"]].to_numpy(),
                        hovertemplate=("%{x}<br>" + category + f": %{{y:{fmt}}}<br>%{{customdata[0]:.0f}} calls "
                                       "per forward (%{customdata[1]:.0f} with nested operators)<extra></extra>"),
                        row=row, col=1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="ms", row=2, col=1)
    fig.update_xaxes(tickangle=-30)
    fig.update_layout(barmode="stack", title=title, height=820, template="plotly_white",
                      margin=dict(l=70, r=20, t=80, b=40))
    figure_style.legend_below(fig, y=-0.16)
    return fig


# -- notebook 09: where the parameters sit, three measures of size ---------------------------------------------
def parameter_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """Notebook 09: stacked bars, parameters per place (front-end, each layer, head), one colour per component."""
    fig = go.Figure()
    for component, rows in table.groupby("component", sort=False):
        fig.add_bar(
            x=rows["where"], y=rows["parameters"], name=component,
            hovertemplate="%{x}<br>" + component + ": %{y:,} parameters<extra></extra>",
        )
    fig.update_layout(barmode="stack", title=title, yaxis_title="parameters", legend_title="component",
                      height=420, margin=dict(l=60, r=20, t=60, b=40))
    return fig


def efficiency_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """Three stacked panels (parameters, MACs per second, RTF), one bar per model; 10 ms bars hatched."""
    measures = {"params": "parameters", "macs_per_second": "MACs per second of speech",
                "real_time_factor": "real-time factor (CPU)"}
    fig = make_subplots(rows=3, cols=1, subplot_titles=list(measures.values()), vertical_spacing=0.1)
    for frame_rate_ms, rows_ in sorted(table.groupby("frame_ms"), reverse=True):
        for row, (key, label) in enumerate(measures.items(), start=1):
            fig.add_bar(
                x=rows_["model"], y=rows_[key], name=f"{frame_rate_ms} ms", legendgroup=f"{frame_rate_ms} ms",
                showlegend=row == 1, marker_color=figure_style.style("dense").colour,
                marker_pattern_shape="/" if frame_rate_ms in figure_style.OPEN_RATES else "",
                marker_pattern_fgcolor="white", marker_line=dict(color="black", width=1),
                customdata=rows_[["layers", "params", "macs_per_second", "real_time_factor"]].values,
                hovertemplate=("%{x}, " + f"{frame_rate_ms} ms" + "<br>layers: %{customdata[0]}"
                               "<br>parameters: %{customdata[1]:,}<br>MACs/s: %{customdata[2]:,}"
                               "<br>RTF: %{customdata[3]:.4f}<extra></extra>"),
                row=row, col=1,
            )
    fig.update_layout(barmode="group", title=title, height=820, template="plotly_white",
                      margin=dict(l=60, r=20, t=70, b=40))
    figure_style.legend_below(fig, y=-0.12)
    return fig


# -- notebook 01: the corpus ---------------------------------------------------------------------------------
def phone_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """One bar per phone, most frequent first; hover shows the count and share."""
    fig = go.Figure(go.Bar(
        x=table["phone"], y=table["count"], customdata=table[["share"]].values,
        hovertemplate="%{x}: %{y:,} labels (%{customdata[0]:.2%})<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="phone (CMU, no stress)", yaxis_title="labels",
                      height=400, margin=dict(l=60, r=20, t=60, b=40))
    return fig


def duration_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """Overlaid histograms (percent of each task's utterances) of utterance duration, 0.5 s bins."""
    fig = go.Figure()
    for task, rows in table.groupby("task", sort=False):
        fig.add_histogram(
            x=rows["seconds"], name=f"{task} ({len(rows)})", histnorm="percent", opacity=0.55,
            xbins=dict(start=0, size=0.5),
            hovertemplate=task + ": %{y:.1f}% of its utterances last %{x} s<extra></extra>",
        )
    fig.update_layout(barmode="overlay", title=title, xaxis_title="duration (s)",
                      yaxis_title="share of the task's utterances (%)", legend_title="task (utterances)",
                      height=400, margin=dict(l=60, r=20, t=60, b=40))
    return fig


def log_mel_figure(feats, title: str) -> go.Figure:
    """Heatmap of a (T, 40) log-Mel: time (s) across, Mel bin up; hover shows the log energy."""
    seconds = [round(0.01 * t, 2) for t in range(feats.shape[0])]
    fig = go.Figure(go.Heatmap(
        z=feats.T.numpy().round(1), x=seconds, y=list(range(feats.shape[1])), colorscale="Viridis",
        colorbar=dict(title="log energy"),
        hovertemplate="%{x:.2f} s, bin %{y}: %{z:.1f}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="Mel bin (low to high frequency)",
                      height=420, margin=dict(l=60, r=20, t=110, b=40))
    return fig
