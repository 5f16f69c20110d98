"""A compression trajectory as results: its table (one row per point), its training log, and the
figures the compression notebooks (03-07) draw from them.

    trajectory_table(out_dir, work_dir) -> DataFrame     one row per point of DIR/trajectory.json
    training_log(out_dir) -> DataFrame                   every stage's training log, steps counted along
    loss_density_figure(table, title, references) -> Figure
    cost_figure(table, title, measures, detail) -> Figure    parameters / MACs against density
    layer_heatmap(table, column, title, unit) -> Figure   heads / FFN units per layer at every point
    distillation_curves(logs, table) -> Figure          the students' training curves
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from compress_lib import figure_style


# -- trajectories --------------------------------------------------------------------------------------------------
def _joined(values) -> str:
    return " ".join(map(str, values))


def trajectory_table(out_dir, work_dir=None) -> pd.DataFrame:
    """One row per point of the trajectory in `out_dir`: what it is, its losses, size, cost and checkpoint.

    Columns: method, frame_ms, point, stage, density, loss (the loss the method trains on), loss_name,
    pretrain_loss, pretrain_accuracy, distill_loss (distillation, combined; else empty), train_loss, layers,
    heads, ffn_units, layer_heads / layer_ffn_dims (space-separated, per layer), params, nonzero_params,
    layer_params, macs_per_second, stage_steps, steps, stage_elapsed_s, elapsed_s, converged (weight
    pruning; else empty) and checkpoint (relative to `work_dir` when given, else to `out_dir`).
    """
    from compress_lib.compression import load_trajectory

    out_dir = Path(out_dir)
    record = load_trajectory(out_dir)
    base = Path(work_dir) if work_dir is not None else out_dir
    rows = []
    for p in record["points"]:
        s = p["structure"]
        rows.append({
            "method": record["method"], "frame_ms": record["settings"]["frame_ms"], "point": p["index"],
            "stage": p["stage"], "density": p["density"], "loss": p["loss"], "loss_name": p["loss_name"],
            "pretrain_loss": p["pretrain_loss"], "pretrain_accuracy": p["pretrain_accuracy"],
            "distill_loss": p.get("distill_loss"), "train_loss": p["train_loss"],
            "layers": s["num_layers"], "heads": sum(s["layer_heads"]), "ffn_units": sum(s["layer_ffn_dims"]),
            "layer_heads": _joined(s["layer_heads"]), "layer_ffn_dims": _joined(s["layer_ffn_dims"]),
            "params": s["parameters"], "nonzero_params": s["nonzero_parameters"],
            "layer_params": s["layer_parameters"], "macs_per_second": s["macs_per_second"],
            "stage_steps": p["stage_steps"], "steps": p["steps"], "stage_elapsed_s": p["stage_elapsed_s"],
            "elapsed_s": p["elapsed_s"], "converged": p.get("converged"),
            "checkpoint": os.path.relpath(out_dir / p["checkpoint"], base),
        })
    return pd.DataFrame(rows)


def training_log(out_dir) -> pd.DataFrame:
    """The training logs of every recorded stage (DIR/stages/<k>/log.csv) with their point `point` and
    `total_step`: the step counted from the start of the trajectory (stage k starts where point k-1 ended)."""
    from compress_lib.compression import load_trajectory

    points = load_trajectory(out_dir)["points"]
    frames = []
    for p in points:
        log = Path(out_dir) / "stages" / str(p["index"]) / "log.csv"
        if p["stage_steps"] and log.is_file():
            rows = pd.read_csv(log)
            rows.insert(0, "point", p["index"])
            rows.insert(1, "total_step", rows["step"] + p["steps"] - p["stage_steps"])
            frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["point", "total_step", "step"])


# -- figures -------------------------------------------------------------------------------------------------------
HOVER_COLUMNS = ("stage", "density", "pretrain_loss", "params", "nonzero_params", "macs_per_second")


def point_hover(y_label: str) -> str:
    """Hover text of a trajectory point (customdata in HOVER_COLUMNS order)."""
    return ("%{customdata[0]}<br>density: %{customdata[1]:.4f}<br>" + y_label + ": %{y:.4f}"
            "<br>pretraining loss: %{customdata[2]:.4f}<br>parameters: %{customdata[3]:,}"
            "<br>non-zero parameters: %{customdata[4]:,}<br>MACs per second: %{customdata[5]:,}"
            "<extra>%{fullData.name}</extra>")


DASHES = ("solid", "dot", "dash", "dashdot", "longdash", "longdashdot")  # one per variant of a figure
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")  # likewise, for the markers


def loss_density_figure(table: pd.DataFrame, title: str, y: str = "pretrain_loss", references: dict | None = None,
                        y_label: str = "pretraining loss (nats)", density_label: str = "density") -> go.Figure:
    """`y` against density, one line per method (its colour, `compress_lib.figure_style`) and frame rate (solid
    20 ms, dotted 10 ms) and, when `table` has a `variant` column, per variant (its own marker shape); density
    falls from left to right as compression proceeds. Hover shows each point's stage, density, losses, parameters
    and MACs. references: {label: value} drawn as dashed grey lines (e.g. the teacher)."""
    key = "variant" if "variant" in table else "method"
    fig = go.Figure()
    for (variant, rate), rows in table.groupby([key, "frame_ms"], sort=False):
        method = rows["method"].iloc[0]
        # a method's first variant (its main trajectory) keeps the method's marker; its ablations get their own
        order = list(dict.fromkeys(table.loc[table["method"] == method, key]))
        k = order.index(variant)
        symbol = figure_style.VARIANT_SYMBOLS[(k - 1) % len(figure_style.VARIANT_SYMBOLS)] if k else None
        fig.add_scatter(x=rows["density"], y=rows[y], mode="lines+markers",
                        name=f"{variant}, {rate} ms" if key == "variant" else figure_style.label(method, rate),
                        line=figure_style.line(method, rate), marker=figure_style.marker(method, rate, symbol=symbol),
                        customdata=rows[list(HOVER_COLUMNS)].values, hovertemplate=point_hover(y_label))
    for i, (label, value) in enumerate((references or {}).items()):
        fig.add_hline(y=value, line=dict(dash="dash", color=figure_style.REFERENCE_COLOUR, width=1),
                      annotation_text=label, annotation_position="top left" if i % 2 else "bottom left")
    fig.update_xaxes(title_text=density_label, autorange="reversed")
    fig.update_yaxes(title_text=y_label)
    fig.update_layout(title=title, height=460, template="plotly_white", margin=dict(l=60, r=20, t=60, b=40))
    figure_style.legend_below(fig, y=-0.2)
    return fig


def cost_figure(table: pd.DataFrame, title: str, measures: dict[str, str], detail: tuple[str, str]) -> go.Figure:
    """One panel per measure ({column: panel title}) against density, stacked, one line per method and frame
    rate; hover shows each point's value and its `detail` (column, label), e.g. ("heads", "heads left")."""
    from plotly.subplots import make_subplots

    column, label = detail
    fig = make_subplots(rows=len(measures), cols=1, subplot_titles=list(measures.values()), vertical_spacing=0.12)
    for (method, rate), rows in table.groupby(["method", "frame_ms"], sort=False):
        for row, key in enumerate(measures, start=1):
            fig.add_scatter(x=rows["density"], y=rows[key], mode="lines+markers",
                            name=figure_style.label(method, rate), line=figure_style.line(method, rate),
                            marker=figure_style.marker(method, rate), showlegend=row == 1,
                            legendgroup=f"{method}{rate}", customdata=rows[[column]].values, row=row, col=1,
                            hovertemplate=f"density %{{x:.4f}}<br>{measures[key]}: %{{y:,}}<br>{label}: "
                                          f"%{{customdata[0]:,}}<extra>{rate} ms</extra>")
    fig.update_xaxes(autorange="reversed")
    fig.update_xaxes(title_text="density", row=len(measures), col=1)
    fig.update_layout(title=title, height=240 * len(measures) + 140, template="plotly_white",
                      margin=dict(l=70, r=20, t=70, b=40))
    figure_style.legend_below(fig, y=-0.12)
    return fig


def layer_heatmap(table: pd.DataFrame, column: str, title: str, unit: str, colorscale: str = "Blues") -> go.Figure:
    """Per frame rate, a heatmap of a per-layer structure column ("layer_heads", "layer_ffn_dims"): one row per
    point, top to bottom as compression proceeds, one column per layer, each cell its count of `unit`."""
    from plotly.subplots import make_subplots

    rates = sorted(table["frame_ms"].unique())
    fig = make_subplots(rows=1, cols=len(rates), subplot_titles=[f"{r} ms" for r in rates], shared_yaxes=True)
    for col, rate in enumerate(rates, start=1):
        rows = table[table["frame_ms"] == rate]
        z = [[int(v) for v in s.split()] for s in rows[column]]  # (points, layers)
        fig.add_heatmap(z=z, x=[f"layer {i + 1}" for i in range(len(z[0]))], y=rows["point"], zmin=0,
                        zmax=max(max(r) for r in z), colorscale=colorscale, showscale=col == 1,
                        colorbar=dict(title=unit), text=z, texttemplate="%{text}", row=1, col=col,
                        hovertemplate=f"point %{{y}}, %{{x}}: %{{z}} {unit}<extra>{rate} ms</extra>")
    fig.update_yaxes(title_text="point", autorange="reversed", row=1, col=1)
    fig.update_layout(title=title, height=max(300, 60 + 40 * int(table["point"].max())),
                      margin=dict(l=60, r=20, t=80, b=40))
    return fig


def distillation_curves(logs: dict, table: pd.DataFrame) -> go.Figure:
    """Notebook 06: each plain student's distillation loss against its training step (raw and smoothed, log y),
    one panel per frame rate; `logs`: frame rate -> `training_log` of its students' trajectory, `table`: the
    students' trajectory table (for their depths)."""
    fig = make_subplots(rows=1, cols=len(logs), subplot_titles=[f"{rate} ms" for rate in logs], shared_yaxes=True)
    for col, (rate, log) in enumerate(logs.items(), start=1):
        points = table[(table["variant"] == "student") & (table["frame_ms"] == rate)].set_index("point")
        for i, (point, rows) in enumerate(log.groupby("point")):
            depth, dash = int(points.loc[point, "layers"]), DASHES[i % len(DASHES)]
            label = f"{depth} layer{'s' if depth > 1 else ''}"
            smooth = rows["loss"].rolling(max(1, len(rows) // 20), min_periods=1).mean()
            for values, width, opacity in ((rows["loss"], 1, 0.3), (smooth, 2.5, 1.0)):
                fig.add_scatter(x=rows["step"], y=values, mode="lines", name=f"{label}, {rate} ms",
                                line=dict(color=figure_style.style("distill").colour, width=width, dash=dash),
                                opacity=opacity,
                                showlegend=width > 1, row=1, col=col,
                                hovertemplate=f"{label}, step %{{x}}: %{{y:.4f}}<extra></extra>")
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.update_yaxes(title_text="distillation loss (KL, nats)", type="log", row=1, col=1)
    fig.update_layout(title="Distillation: training curves", height=420, margin=dict(l=60, r=20, t=80, b=50))
    return fig
