"""The book's figures speak one visual language: a method's colour and marker never change, frame rates differ
by dash and fill, trajectories run in density order, ablations are their own traces, axes fit the data."""

from __future__ import annotations

import pandas as pd
import pytest

from compress_lib import figure_style
from compress_lib.figures import cost_figure, is_variant, quality_figure, runtime_figure, variant_of
from compress_lib.results import summary_frame
from compress_lib.trajectory_results import cost_figure as trajectory_cost_figure
from compress_lib.trajectory_results import loss_density_figure


def table() -> pd.DataFrame:
    rows = []
    for rate, shift in ((20, 0.0), (10, 4.0)):
        rows += [
            ("dense", "dense", 1.0, 6, 30.0 + shift, 60.0),
            ("random-init", "random-init", 1.0, 6, 38.0 + shift, 56.0),
            ("fbank", "fbank", None, 0, 52.0 + shift, 55.0),
            # listed out of density order on purpose
            ("heads-0.25", "heads", 0.25, 6, 31.0 + shift, 59.0),
            ("heads-0.75", "heads", 0.75, 6, 30.5 + shift, 60.5),
            ("heads-0.5", "heads", 0.5, 6, 30.0 + shift, 61.0),
            ("distill-0.5", "distill", 0.5, 3, 34.0 + shift, 55.0),
            ("distill-0.5 (student, masked input)", "distill", 0.5, 3, 33.0 + shift, 56.0),
        ]
    rates = [20] * 8 + [10] * 8
    frame = summary_frame([{"model": m, "method": k, "density": d, "frame_ms": rate, "per": per,
                            "sid_accuracy": sid, "params": 100, "nonzero_params": 100 * (d or 1),
                            "macs_per_second": 1000 * (d or 1), "real_time_factor": 0.01 * (d or 1)}
                           for (m, k, d, n, per, sid), rate in zip(rows, rates)])
    return frame.assign(layers=[n for (_, _, _, n, _, _) in rows])  # as notebook 08 adds them


def method_of(trace) -> str:
    return next(m for m in figure_style.METHOD_STYLES if trace.name.startswith(figure_style.label(m)))


def test_variant_names():
    assert is_variant("distill-0.5 (student, masked input)") and not is_variant("distill-0.5")
    assert variant_of("distill-0.5 (student, masked input)") == "student, masked input"


def test_marker_and_line_tell_the_frame_rate_by_fill_and_dash_never_by_colour():
    for method in figure_style.METHOD_STYLES:
        m20, m10 = figure_style.marker(method, 20), figure_style.marker(method, 10)
        assert m20["color"] == m10["color"] == figure_style.style(method).colour
        assert m10["symbol"] == m20["symbol"] + "-open"
        assert figure_style.line(method, 20)["dash"] != figure_style.line(method, 10)["dash"]
    colours = [s.colour for k, s in figure_style.METHOD_STYLES.items() if k not in ("random-init", "fbank")]
    symbols = [s.symbol for s in figure_style.METHOD_STYLES.values()]
    assert len(set(colours)) == len(colours) and len(set(symbols)) == len(symbols)
    assert not set(figure_style.VARIANT_SYMBOLS) & set(symbols)  # an ablation never looks like another method


@pytest.mark.parametrize("make", [
    lambda t: quality_figure(t, ["heads"], "density", "density", "Figure 1", reverse_x=True),
    lambda t: quality_figure(t, ["distill"], "layers", "layers", "Figure 2", dtick_x=1),
    lambda t: cost_figure(t, "per", "Figure 3"),
])
def test_result_figures_keep_each_methods_style(make):
    fig = make(table())
    points = [t for t in fig.data if t.x is not None and len(t.x) and t.marker.symbol]
    assert points
    for trace in points:
        method = method_of(trace)
        assert trace.marker.color == figure_style.style(method).colour, trace.name
        assert trace.marker.symbol.endswith("-open") == (", 10 ms" in trace.name), trace.name
        if "(" in trace.name:  # an ablation variant: markers only, a shape of its own
            assert trace.mode == "markers" and trace.marker.symbol.split("-")[0] in figure_style.VARIANT_SYMBOLS


def test_trajectories_run_in_density_order_and_variants_are_their_own_traces():
    fig = quality_figure(table(), ["heads", "distill"], "density", "density", "t", reverse_x=True)
    heads = [t for t in fig.data if t.name == "head pruning, 20 ms"]
    assert heads and all(list(t.x) == [1.0, 0.75, 0.5, 0.25] for t in heads)  # from the dense model on
    assert [list(t.y) for t in heads] == [[30.0, 30.5, 30.0, 31.0], [60.0, 60.5, 61.0, 59.0]]  # PER, SID
    main = [t for t in fig.data if t.name == "distillation, 20 ms"]
    variant = [t for t in fig.data if t.name == "distillation, 20 ms (student, masked input)"]
    assert all(list(t.x) == [1.0, 0.5] for t in main) and all(list(t.x) == [0.5] for t in variant) and variant
    by_layers = quality_figure(table(), ["distill"], "layers", "layers", "t")
    assert [list(t.x) for t in by_layers.data if t.name == "distillation, 10 ms"] == [[6, 3], [6, 3]]


def test_y_axis_fits_the_trajectories_and_names_far_references_at_the_edge():
    fig = quality_figure(table(), ["heads"], "density", "density", "t", reverse_x=True)
    low, high = fig.layout.yaxis.range  # PER at 20 ms
    assert low < 30.0 and 31.0 < high < 38.0  # fits heads and dense; random-init (38) and fbank (52) are outside
    edge = [a.text for a in fig.layout.annotations if "↑" in (a.text or "")]
    assert any("log-Mel features, 20 ms: 52.0" in t and "random-init twin, 20 ms: 38.0" in t for t in edge)


def test_panels_are_stacked_wide_and_the_legend_sits_below():
    fig = cost_figure(table(), "per", "t")
    assert [fig.layout[f"xaxis{i}"].domain for i in ("", 2, 3)] == [(0.0, 1.0)] * 3
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0
    grid = quality_figure(table(), ["heads"], "density", "density", "t")
    assert all(d[1] - d[0] > 0.4 for d in (grid.layout.xaxis.domain, grid.layout.xaxis2.domain))
    deployed = pd.DataFrame([{"model": m, "method": k, "density": d, "frame_ms": 20, "runtime": r,
                              "macs_fraction": d, "relative_runtime": d * f, "real_time_factor": 0.01 * d * f}
                             for r, f in (("eager", 1.0), ("onnxruntime", 0.9), ("onnxruntime-int8", 0.6))
                             for m, k, d in (("dense", "dense", 1.0), ("heads-0.5", "heads", 0.5))])
    runtimes = runtime_figure(deployed, "macs_fraction", "MACs / dense")
    assert [runtimes.layout[f"xaxis{i}"].domain for i in ("", 2, 3)] == [(0.0, 1.0)] * 3  # one runtime per row
    assert [a.text for a in runtimes.layout.annotations] == ["eager PyTorch", "ONNX Runtime", "ONNX Runtime, int8"]
    assert runtimes.layout.legend.orientation == "h" and runtimes.layout.legend.y < 0


def test_trajectory_figures_of_the_method_notebooks_use_the_method_colours():
    rows = table()
    rows = rows[rows["method"].isin(["heads", "distill"])].assign(pretrain_loss=2.5, stage="s", point=0)
    rows["variant"] = rows["model"].map(lambda m: variant_of(m) if is_variant(m) else "student")
    fig = loss_density_figure(rows.drop(columns="variant"), "t", references={"teacher": 2.4})
    assert {t.line.color for t in fig.data} == {figure_style.style("heads").colour, figure_style.style("distill").colour}
    fig = loss_density_figure(rows[rows["method"] == "distill"], "t")
    symbols = {t.name: t.marker.symbol for t in fig.data}
    assert symbols["student, 20 ms"] == "triangle-up" and symbols["student, masked input, 20 ms"] == "bowtie"
    costs = trajectory_cost_figure(rows.drop(columns="variant"), "t", {"params": "parameters"}, ("layers", "layers"))
    assert {t.line.dash for t in costs.data} == {"solid", "dot"}
