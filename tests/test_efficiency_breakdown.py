"""The runtime breakdown by operator type, the architecture of a recorded point, the sparse-kernel sweep and its
crossover, and (slow) a smoke run of notebooks/12_runtime_anatomy.md. Counts and shares only: never a timing
threshold."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from compress_lib.config import config_for_preset
from compress_lib.efficiency import CATEGORIES, count_parameters, runtime_breakdown
from compress_lib.efficiency.breakdown import (
    by_category,
    operator_category,
    parse_layers,
    point_config,
    profile_in_turns,
    profile_operators,
    sparsest_point,
)
from compress_lib.efficiency.inputs import example_inputs
from compress_lib.efficiency.sparse import (
    LAYER_LINEARS,
    magnitude_masks,
    sparse_crossover,
    sparse_linear_sweep,
    sparsify,
)
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT

ROOT = Path(__file__).resolve().parents[1]


def smoke_model(**overrides) -> MelHuBERT:
    torch.manual_seed(0)
    return MelHuBERT(config_for_preset("smoke", 20, **overrides)).eval()


def calls_of(table: pd.DataFrame) -> dict[str, float]:
    return dict(zip(table["operator"], table["calls"]))


# -- categories -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, category", [
    ("aten::linear", "matmul"), ("aten::addmm", "matmul"), ("aten::mm", "matmul"), ("aten::bmm", "matmul"),
    ("aten::matmul", "matmul"), ("addmm", "matmul"),
    ("aten::scaled_dot_product_attention", "attention"), ("aten::_scaled_dot_product_flash_attention_for_cpu",
                                                          "attention"),
    ("aten::softmax", "attention"), ("aten::_safe_softmax", "attention"),
    ("aten::conv1d", "convolution"), ("aten::convolution", "convolution"),
    ("aten::layer_norm", "norm/activation"), ("aten::native_layer_norm", "norm/activation"),
    ("aten::gelu", "norm/activation"), ("aten::_weight_norm", "norm/activation"),
    ("aten::add", "other"), ("aten::transpose", "other"), ("aten::dropout", "other"), ("aten::view", "other"),
    ("aten::linear_backward_something_new", "other"),
])
def test_operator_category(name, category):
    assert operator_category(name) == category
    assert category in CATEGORIES


def test_operator_category_rejects_a_non_string():
    with pytest.raises(CompressLibError, match="must be a string"):
        operator_category(None)


# -- profiling ----------------------------------------------------------------------------------------------------
def test_profile_counts_the_calls_of_one_forward_pass():
    """Per forward of a 4-layer MelHuBERT (no cluster head): the input projection and 6 linear layers per layer,
    one attention call per layer, one LayerNorm before the layers and 2 in each, GELU after the positional
    convolution and in each FFN, one convolution and its weight norm."""
    model = smoke_model()
    L = model.cfg.num_layers
    table = profile_operators(model, example_inputs(model, 1.0), repeats=2, warmup=1, threads=1)
    calls = calls_of(table)
    assert calls["aten::linear"] == 1 + 6 * L
    assert calls["aten::scaled_dot_product_attention"] == L
    assert calls["aten::layer_norm"] == 1 + 2 * L
    assert calls["aten::gelu"] == 1 + L
    assert calls["aten::conv1d"] == 1 and calls["aten::_weight_norm"] == 1
    assert (table["nested_calls"] >= table["calls"]).all()
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["share"].between(0, 1).all() and (table["cpu_time_us"] >= 0).all()
    assert set(table["category"]) <= set(CATEGORIES)
    assert list(table["category"]) == [operator_category(n) for n in table["operator"]]
    assert table.attrs["repeats"] == 2 and table.attrs["threads"] == 1
    assert table.attrs["operator_us"] == pytest.approx(table["cpu_time_us"].sum())
    assert not model.training


def test_calls_per_forward_do_not_depend_on_the_number_of_forwards():
    model = smoke_model()
    inputs = example_inputs(model, 0.5)
    one = profile_operators(model, inputs, repeats=1, warmup=1, threads=1).set_index("operator")
    three = profile_operators(model, inputs, repeats=3, warmup=0, threads=1).set_index("operator")
    assert one["calls"].sort_index().to_dict() == three["calls"].sort_index().to_dict()
    assert one["nested_calls"].sort_index().to_dict() == three["nested_calls"].sort_index().to_dict()


def test_models_profiled_in_turns_keep_their_own_counts():
    """Each model's operators are told apart by its own profiler range: the counts are those it has alone."""
    deep, shallow = smoke_model(), smoke_model(num_layers=1)
    runs = {"deep": (deep, example_inputs(deep, 1.0)), "shallow": (shallow, example_inputs(shallow, 1.0))}
    tables = profile_in_turns(runs, repeats=2, warmup=1, threads=1)
    assert list(tables) == ["deep", "shallow"]
    alone = profile_operators(shallow, example_inputs(shallow, 1.0), repeats=1, threads=1)
    assert calls_of(tables["shallow"]) == calls_of(alone)
    assert calls_of(tables["deep"])["aten::linear"] == 1 + 6 * 4 and calls_of(tables["shallow"])["aten::linear"] == 7
    for table in tables.values():
        assert table["share"].sum() == pytest.approx(1.0)
        assert table.attrs["operator_us_median"] > 0 and table.attrs["forward_us_median"] > 0


def test_breakdown_has_every_category_and_shares_summing_to_one():
    model = smoke_model()
    inputs = example_inputs(model, 1.0)
    table = runtime_breakdown(model, inputs, repeats=1, warmup=1, threads=1)
    assert list(table["category"]) == list(CATEGORIES)
    assert table["share"].sum() == pytest.approx(1.0)
    L = model.cfg.num_layers
    counts = dict(zip(table["category"], table["calls"]))
    assert counts["matmul"] == 1 + 6 * L and counts["attention"] == L and counts["convolution"] == 1
    assert counts["norm/activation"] == (1 + 2 * L) + (1 + L) + 1  # LayerNorms, GELUs, the weight norm
    assert table.attrs["forward_us"] > 0


def test_by_category_sums_operators_and_fills_missing_categories():
    operators = pd.DataFrame({
        "operator": ["aten::linear", "aten::addmm", "aten::gelu", "aten::view"],
        "category": ["matmul", "matmul", "norm/activation", "other"],
        "calls": [3.0, 2.0, 1.0, 4.0], "nested_calls": [9.0, 2.0, 1.0, 4.0],
        "cpu_time_us": [30.0, 10.0, 40.0, 20.0], "share": [0.3, 0.1, 0.4, 0.2],
    })
    operators.attrs["repeats"] = 7
    table = by_category(operators).set_index("category")
    assert list(table.index) == list(CATEGORIES)
    assert table.loc["matmul", "calls"] == 5 and table.loc["matmul", "nested_calls"] == 11
    assert table.loc["attention", "calls"] == 0 and table.loc["attention", "share"] == 0
    assert table["share"].to_dict() == pytest.approx(
        {"matmul": 0.4, "attention": 0.0, "convolution": 0.0, "norm/activation": 0.4, "other": 0.2})
    assert by_category(operators).attrs["repeats"] == 7


def test_pruned_architectures_make_fewer_calls():
    """A layer with every head pruned calls no attention; a student with fewer layers makes fewer calls."""
    base = config_for_preset("smoke", 20)
    pruned = MelHuBERT(point_config({"layer_heads": "2 0 1 2", "layer_ffn_dims": "64 64 10 64"}, base))
    student = MelHuBERT(point_config({"layer_heads": "2", "layer_ffn_dims": 64}, base))
    counts = {}
    for name, model in (("pruned", pruned), ("student", student)):
        table = runtime_breakdown(model, example_inputs(model, 1.0), repeats=1, warmup=1, threads=1)
        counts[name] = dict(zip(table["category"], table["calls"]))
    assert counts["pruned"]["attention"] == 3  # the layer without heads skips attention entirely
    assert counts["student"]["attention"] == 1 and counts["student"]["matmul"] == 1 + 6
    assert sum(counts["student"].values()) < sum(counts["pruned"].values())


def test_sparse_kernels_keep_the_number_of_matrix_products():
    """CSRLinear replaces each masked `aten::linear` by one `aten::addmm`: the matmul calls stay the same."""
    model = smoke_model()
    sparse = sparsify(model, magnitude_masks(model, 0.2))
    dense_calls = runtime_breakdown(model, example_inputs(model, 1.0), repeats=1, threads=1)
    sparse_table = profile_operators(sparse, example_inputs(sparse, 1.0), repeats=1, threads=1)
    L = model.cfg.num_layers
    assert calls_of(sparse_table)["aten::addmm"] == 6 * L and calls_of(sparse_table)["aten::linear"] == 1
    assert by_category(sparse_table).set_index("category").loc["matmul", "calls"] == \
        dense_calls.set_index("category").loc["matmul", "calls"]


def test_profile_rejects_bad_repeats():
    model = smoke_model()
    with pytest.raises(CompressLibError, match="repeats must be an integer >= 1"):
        profile_operators(model, example_inputs(model, 1.0), repeats=0)
    with pytest.raises(CompressLibError, match="warmup must be an integer >= 0"):
        profile_operators(model, example_inputs(model, 1.0), warmup=-1)


# -- the architecture of a recorded point -------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("4 4 3", [4, 4, 3]), ("1024", [1024]), (np.int64(174), [174]), (7, [7]), ([1, 0, 2], [1, 0, 2]),
    (" 2  1 ", [2, 1]),
])
def test_parse_layers(value, expected):
    assert parse_layers(value) == expected


@pytest.mark.parametrize("value", ["", "4 x", "4 -1", "2.5", None, True, float("nan")])
def test_parse_layers_rejects_bad_values(value):
    with pytest.raises(CompressLibError, match="per-layer counts"):
        parse_layers(value)


def trajectory() -> pd.DataFrame:
    return pd.DataFrame({
        "method": ["heads"] * 5 + ["distill", "distill", "truncate"],
        "variant": [None] * 5 + ["student", "student, masked input", "truncation"],
        "frame_ms": [10, 10, 20, 20, 20, 20, 20, 20],
        "point": [0, 1, 0, 1, 2, 0, 0, 0],
        "density": [1.0, 0.25, 1.0, 0.5, 0.5, 0.16, 0.16, 0.16],
        "layer_heads": ["4 4", "1 1", "4 4", "2 2", "1 3", "4", "4", "4"],
        "layer_ffn_dims": ["8 8", "8 8", "8 8", "8 8", "8 8", "8", "8", "8"],
    })


def test_sparsest_point_picks_the_lowest_density_of_the_rate():
    table = trajectory()
    assert sparsest_point(table, 10, "heads")["layer_heads"] == "1 1"
    assert sparsest_point(table, 20, "heads")["point"] == 2  # a tie: the later point
    assert sparsest_point(table, 20, "distill", "student")["variant"] == "student"
    with pytest.raises(CompressLibError, match="no point at 10 ms with method 'distill'"):
        sparsest_point(table, 10, "distill")
    with pytest.raises(CompressLibError, match="variant 'teacher'"):
        sparsest_point(table, 20, "distill", "teacher")


def test_point_config_rebuilds_the_recorded_architecture():
    base = config_for_preset("study", 20)
    cfg = point_config({"layer_heads": "3 1 2", "layer_ffn_dims": "171 171 171"}, base)
    assert cfg.layer_heads == [3, 1, 2] and cfg.layer_ffn_dims == [171] * 3
    assert cfg.head_dim == base.head_dim and cfg.embed_dim == base.embed_dim and cfg.frame_ms == 20
    with torch.device("meta"):
        model = MelHuBERT(cfg)
    assert [layer.self_attn.num_heads for layer in model.layers] == [3, 1, 2]
    assert [layer.fc1.out_features for layer in model.layers] == [171] * 3
    with pytest.raises(CompressLibError, match="3 layers of heads but 2 of FFN units"):
        point_config({"layer_heads": "3 1 2", "layer_ffn_dims": "171 171"}, base)


@pytest.mark.parametrize("folder, name, method, variant", [
    ("04_head_pruning", "heads.csv", "heads", None), ("05_lowrank", "ffn.csv", "ffn", None),
    ("06_distillation", "distill.csv", "distill", "student"), ("07_combined", "combined.csv", "combined", None),
])
def test_rebuilt_study_points_have_the_recorded_parameter_counts(folder, name, method, variant):
    path = ROOT / "data" / "results" / "study" / folder / name
    if not path.is_file():
        pytest.skip(f"{path} is not committed")
    table = pd.read_csv(path)
    for rate in sorted(set(table["frame_ms"])):
        point = sparsest_point(table, rate, method, variant)
        with torch.device("meta"):
            model = MelHuBERT(point_config(point, config_for_preset("study", rate)))
        assert count_parameters(model)["params"] == point["params"], (method, rate)


# -- the sparse-kernel sweep and its crossover ----------------------------------------------------------------------
def rows_of(pairs):
    return [{"density": d, "ratio": r} for d, r in pairs]


def test_sparse_linear_sweep_quartiles_bracket_the_median():
    layer = smoke_model().layers[0]
    for r in sparse_linear_sweep(layer, densities=(0.5, 0.1), frames=5, repeats=4, warmup=0, threads=1):
        assert r["ratio_q1"] <= r["ratio"] <= r["ratio_q3"] and r["repeats"] == 4


def test_sparse_crossover_interpolates_between_the_last_win_and_the_first_loss():
    rows = rows_of([(1.0, 4.0), (0.5, 2.0), (0.2, 1.5), (0.1, 0.5), (0.05, 0.25)])
    found = sparse_crossover(rows)
    assert found["wins_at_or_below"] == 0.1 and found["loses_at"] == 0.2
    f = -math.log(0.5) / (math.log(1.5) - math.log(0.5))  # where log(ratio) reaches 0 between the two
    assert found["crossover_density"] == pytest.approx(0.1 + f * 0.1)
    assert 0.1 < found["crossover_density"] < 0.2


def test_sparse_crossover_edge_cases():
    assert sparse_crossover(rows_of([(1.0, 0.9), (0.5, 0.5)])) == \
        {"wins_at_or_below": 1.0, "loses_at": None, "crossover_density": None}  # wins everywhere
    assert sparse_crossover(rows_of([(1.0, 3.0), (0.5, 1.2)])) == \
        {"wins_at_or_below": None, "loses_at": 0.5, "crossover_density": None}  # loses everywhere
    lucky = sparse_crossover(rows_of([(0.8, 0.95), (0.5, 1.3), (0.1, 0.7)]))  # one win amid losses is ignored
    assert lucky["wins_at_or_below"] == 0.1 and lucky["loses_at"] == 0.5
    assert sparse_crossover(rows_of([(0.2, 1.0), (0.1, 0.8)]))["crossover_density"] == pytest.approx(0.2)


def test_sparse_linear_sweep_rows():
    layer = smoke_model().layers[0]
    rows = sparse_linear_sweep(layer, densities=(1.0, 0.5, 0.1), frames=7, repeats=1, warmup=0, threads=1)
    assert [r["density"] for r in rows] == [1.0, 0.5, 0.1]
    weights = sum(layer.get_submodule(n).weight.numel() for n in LAYER_LINEARS)
    assert rows[0]["kept"] == 1.0 and rows[0]["dense_macs"] == 7 * weights == rows[0]["sparse_macs"]
    assert rows[0]["kept"] > rows[1]["kept"] > rows[2]["kept"] > 0
    for r in rows:
        assert r["dense_s"] > 0 and r["sparse_s"] > 0
        assert r["ratio"] == pytest.approx(r["sparse_s"] / r["dense_s"])  # one round: the ratio of the two times
        assert r["ratio_q1"] == r["ratio_q3"] == pytest.approx(r["ratio"])
        assert r["sparse_macs"] == round(r["kept"] * r["dense_macs"])
        assert (r["frames"], r["batch"], r["repeats"], r["threads"]) == (7, 1, 1, 1)
    assert all(isinstance(layer.get_submodule(n), torch.nn.Linear) for n in LAYER_LINEARS)  # left as it was


# -- the notebook ---------------------------------------------------------------------------------------------------
def fake_tables(results: Path) -> None:
    """Smoke-size trajectory tables of 03-07 (20 ms; the structures only) with their true parameter counts."""
    base = config_for_preset("smoke", 20)

    def row(method, point, density, heads, ffn, variant=None):
        with torch.device("meta"):
            params = count_parameters(MelHuBERT(point_config({"layer_heads": heads, "layer_ffn_dims": ffn}, base)))
        return {"method": method, "variant": variant, "frame_ms": 20, "point": point, "density": density,
                "layer_heads": heads, "layer_ffn_dims": ffn, "params": params["params"]}

    tables = {
        "03_weight_pruning/weight.csv": [row("weight", 0, 1.0, "2 2 2 2", "64 64 64 64"),
                                         row("weight", 1, 0.3, "2 2 2 2", "64 64 64 64")],
        "04_head_pruning/heads.csv": [row("heads", 0, 1.0, "2 2 2 2", "64 64 64 64"),
                                      row("heads", 1, 0.5, "1 0 2 1", "64 64 64 64")],
        "05_lowrank/ffn.csv": [row("ffn", 1, 0.25, "2 2 2 2", "16 16 16 16")],
        "06_distillation/distill.csv": [row("distill", 0, 0.25, "2", "64", "student"),
                                        row("truncate", 0, 0.25, "2", "64", "truncation")],
        "07_combined/combined.csv": [row("combined", 3, 0.2, "1 2", "20 20")],
    }
    for name, rows in tables.items():
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(results / name, index=False)


@pytest.mark.slow
def test_smoke_run_of_the_runtime_anatomy_notebook(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import jupytext
    import papermill
    import run_study

    results = tmp_path / "results" / "smoke"
    fake_tables(results)
    args = ["--preset", "smoke", "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results"),
            "--no-book", "--quiet", "--only", "12_runtime_anatomy"]
    assert run_study.main(args) == 0
    out = results / "12_runtime_anatomy"
    crossover = pd.read_csv(out / "crossover.csv")
    assert set(zip(crossover["size"], crossover["frame_ms"])) == {("smoke", 10), ("smoke", 20)}
    kernels = pd.read_csv(out / "sparse_kernels.csv")
    assert len(kernels) == 2 * 3 and set(kernels["frames"]) == {50, 100}
    breakdown = pd.read_csv(out / "runtime_breakdown.csv")
    assert set(breakdown["method"]) == {"dense", "weight", "weight, CSR kernels", "heads", "ffn", "distill",
                                        "combined"}
    for model, rows in breakdown.groupby("model"):
        assert list(rows["category"]) == list(CATEGORIES), model
        assert rows["share"].sum() == pytest.approx(1.0), model
    calls = breakdown.pivot_table(index="method", columns="category", values="calls")
    assert calls.loc["heads", "attention"] == 3 and calls.loc["distill", "attention"] == 1  # one layer without heads
    assert calls.loc["combined", "matmul"] == 1 + 6 * 2
    operators = pd.read_csv(out / "operator_calls.csv")
    assert set(operators["model"]) == set(breakdown["model"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runtime_breakdown"]["left_out"] == [] and summary["threads"] == 1
    assert set(summary["sparse_kernels"]["crossover_density"]) == {"smoke, 10 ms", "smoke, 20 ms"}
    assert set(summary["runtime_breakdown"]["shares"]) == set(breakdown["model"])

    ipynb = tmp_path / "12_runtime_anatomy.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "12_runtime_anatomy.md"), ipynb, fmt="ipynb")
    with pytest.raises(papermill.PapermillExecutionError, match=r"densities must be distinct numbers in \(0, 1\]"):
        papermill.execute_notebook(str(ipynb), str(tmp_path / "bad.ipynb"), kernel_name="python3", cwd=str(ROOT),
                                   progress_bar=False, parameters=dict(preset="smoke", densities="1,2",
                                                                       output_dir=str(tmp_path / "bad")))
