"""The paper's findings judged on small synthetic results tables: every verdict reachable, missing rows give
"not measured", string and empty cells read like numbers, ablations left out."""

from __future__ import annotations

import pandas as pd
import pytest

from compress_lib.results import SUMMARY_COLUMNS, read_summary, update_summary
from compress_lib.verdicts import (
    VERDICT_COLUMNS, VERDICTS, all_verdicts, combined_beats_distillation, distillation_best_runtime_tradeoff,
    ffn_pruning_degrades, head_pruning_keeps, heads_faster_than_ffn, kept_down_to, keeps, students_keep_sid_lose_pr,
    weight_pruning_keeps,
)

# (method, density, PER, SID accuracy, MACs per second, non-zero parameters, real-time factor)
ROWS = [
    ("dense", 1.0, 40.0, 60.0, 1.00e9, 1.0e6, 0.100),
    ("weight", 0.8, 39.5, 61.0, 0.80e9, 0.8e6, 0.100),  # masks: as slow as dense
    ("weight", 0.6, 40.0, 60.0, 0.60e9, 0.6e6, 0.100),
    ("weight", 0.4, 41.5, 59.0, 0.40e9, 0.4e6, 0.100),
    ("weight", 0.3, 43.0, 58.0, 0.30e9, 0.3e6, 0.100),  # PR lost (> 40 + 2)
    ("weight", 0.2, 46.0, 57.5, 0.20e9, 0.2e6, 0.100),  # SID still kept (>= 60 - 3)
    ("heads", 0.833, 40.0, 60.0, 0.95e9, 0.95e6, 0.090),
    ("heads", 0.667, 40.5, 59.0, 0.90e9, 0.90e6, 0.080),
    ("heads", 0.5, 41.0, 58.0, 0.85e9, 0.85e6, 0.070),
    ("heads", 0.333, 41.5, 57.0, 0.80e9, 0.80e6, 0.060),
    ("heads", 0.25, 44.0, 50.0, 0.78e9, 0.78e6, 0.058),  # both lost
    ("ffn", 0.833, 40.5, 57.0, 0.90e9, 0.80e6, 0.098),
    ("ffn", 0.667, 41.0, 54.0, 0.80e9, 0.60e6, 0.096),
    ("ffn", 0.5, 41.5, 50.0, 0.70e9, 0.45e6, 0.094),
    ("ffn", 0.333, 42.0, 45.0, 0.60e9, 0.30e6, 0.092),
    ("ffn", 0.167, 43.0, 40.0, 0.50e9, 0.20e6, 0.090),
    ("distill", 0.5, 45.0, 61.0, 0.50e9, 0.5e6, 0.050),
    ("distill", 1 / 6, 52.0, 58.0, 0.17e9, 0.2e6, 0.017),
    ("truncate", 0.5, 55.0, 50.0, 0.50e9, 0.5e6, 0.050),
    ("truncate", 1 / 6, 65.0, 45.0, 0.17e9, 0.2e6, 0.017),
    ("combined", 0.5, 45.0, 61.0, 0.50e9, 0.5e6, 0.050),
    ("combined", 0.35, 45.5, 60.0, 0.35e9, 0.35e6, 0.042),
    ("combined", 0.2, 46.0, 60.0, 0.25e9, 0.2e6, 0.035),
]
NUMBERS = ("density", "per", "sid_accuracy", "macs_per_second", "nonzero_params", "real_time_factor")


def table(*changes: dict, frame_ms: int = 20) -> pd.DataFrame:
    """A summary table of ROWS; each of `changes` maps (method, density) -> {column: value} (None: no row)."""
    changes = {k: v for change in changes for k, v in change.items()}
    records = []
    for method, density, *values in ROWS:
        record = {"model": "dense" if method == "dense" else f"{method}-{density:.4g}", "method": method,
                  "frame_ms": frame_ms, "params": values[3], **dict(zip(NUMBERS, (density, *values)))}
        if (method, density) in changes and changes[method, density] is None:
            continue
        records.append({**record, **changes.get((method, density), {})})
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))


def drop(method: str) -> dict:
    return {(m, d): None for m, d, *_ in ROWS if m == method}


def test_every_finding_reproduced_on_a_table_that_shows_them():
    verdicts = all_verdicts(table(), 20)
    assert list(verdicts.columns) == list(VERDICT_COLUMNS)
    assert list(verdicts["id"]) == ["a-PR", "a-SID", "b-PR", "b-SID", "c", "d", "e", "f", "g"]
    assert (verdicts["frame_ms"] == 20).all()
    assert set(verdicts["verdict"]) == {"reproduced"}, verdicts[["id", "ours"]].to_string()
    a_pr = verdicts.set_index("id").loc["a-PR"]
    assert "kept down to density 0.4" in a_pr["ours"] and "lost at 0.3" in a_pr["ours"]
    assert "40%" in a_pr["paper"]
    assert "CPU" in verdicts.set_index("id").loc["e", "ours"]


def test_string_and_empty_cells_read_back_from_the_csv(tmp_path):
    path = tmp_path / "summary.csv"
    for record in table().to_dict(orient="records"):
        update_summary(path, record)
    update_summary(path, {"model": "fbank", "method": "fbank", "frame_ms": 20, "per": 80.0})  # other cells empty
    update_summary(path, {"model": "heads-0.1", "method": "heads", "frame_ms": 20, "density": 0.1})  # no results yet
    strings = pd.DataFrame(read_summary(path))
    assert strings["per"].map(type).eq(str).all() and (strings["sid_accuracy"] == "").any()
    assert all_verdicts(strings, 20)["verdict"].tolist() == all_verdicts(table(), 20)["verdict"].tolist()
    strings.loc[strings["model"] == "ffn-0.5", "per"] = "n/a"  # junk reads as missing
    assert ffn_pruning_degrades(strings, 20)["verdict"] == "reproduced"


def test_missing_rows_are_not_measured_never_guessed():
    assert set(all_verdicts(table().iloc[0:0], 20)["verdict"]) == {"not measured"}
    assert set(all_verdicts(table(), 10)["verdict"]) == {"not measured"}  # only 20 ms in the table
    assert set(all_verdicts(table({("dense", 1.0): None}), 20).set_index("id").loc[
        ["a-PR", "a-SID", "b-PR", "b-SID", "c", "d"], "verdict"]) == {"not measured"}
    assert combined_beats_distillation(table(drop("combined")), 20)["verdict"] == "not measured"
    assert combined_beats_distillation(table(drop("distill")), 20)["verdict"] == "not measured"
    assert distillation_best_runtime_tradeoff(table(drop("distill")), 20)["verdict"] == "not measured"
    no_rtf = {(m, d): {"real_time_factor": ""} for m, d, *_ in ROWS if m == "ffn"}
    assert heads_faster_than_ffn(table(no_rtf), 20)["verdict"] == "not measured"  # the dense point is no curve
    one_student = table({("distill", 1 / 6): None})
    assert students_keep_sid_lose_pr(one_student, 20)["verdict"] == "not measured"


def test_pruning_schedule_that_stops_early_says_at_least():
    """Every weight-pruned model keeps SID but the schedule stops at 30%: the paper's 20% is not measured."""
    row = weight_pruning_keeps(table({("weight", 0.2): None}), 20, "SID")
    assert row["verdict"] == "not measured"
    assert "at least down to density 0.3" in row["ours"] and "0.2 was not evaluated" in row["ours"]
    assert weight_pruning_keeps(table(), 20, "SID")["verdict"] == "reproduced"  # 0.2 evaluated and kept


def test_pruning_that_loses_a_task_early_is_not_reproduced():
    early = table({("weight", 0.6): {"per": 45.0}})
    row = weight_pruning_keeps(early, 20, "PR")
    assert row["verdict"] == "not reproduced" and "lost at 0.6" in row["ours"]
    at_once = head_pruning_keeps(table({("heads", 0.833): {"sid_accuracy": 40.0}}), 20, "SID")
    assert at_once["verdict"] == "not reproduced" and "densest" in at_once["ours"]
    # a wider tolerance keeps it
    assert weight_pruning_keeps(early, 20, "PR", per_tolerance=6.0)["verdict"] == "reproduced"


def test_ffn_finding_parts():
    sid_mild = {(m, d): {"sid_accuracy": 59.0} for m, d, *_ in ROWS if m == "ffn"}
    assert ffn_pruning_degrades(table(sid_mild), 20)["verdict"] == "different"  # PR lost, SID barely moves
    better = {(m, d): {"sid_accuracy": 70.0, "per": 39.0} for m, d, *_ in ROWS if m == "ffn"}
    row = ffn_pruning_degrades(table(better), 20)
    assert row["verdict"] == "not reproduced" and "better than dense" in row["ours"]


def test_student_finding_parts():
    assert students_keep_sid_lose_pr(table({("distill", 0.5): {"per": 41.0}}), 20)["verdict"] == "different"
    assert students_keep_sid_lose_pr(table({("distill", 0.5): {"sid_accuracy": 50.0}}), 20)["verdict"] == (
        "not reproduced")


def test_runtime_tradeoff_of_distillation():
    dominated = table({("heads", 0.25): {"per": 40.0, "real_time_factor": 0.03}})  # faster and better
    row = distillation_best_runtime_tradeoff(dominated, 20)
    assert row["verdict"] == "not reproduced" and "beaten by heads-0.25" in row["ours"]
    alone = table(drop("truncate"), drop("weight"), drop("ffn"),
                  {(m, d): {"per": 60.0} for m, d, *_ in ROWS if m == "distill"})
    assert distillation_best_runtime_tradeoff(alone, 20)["verdict"] == "different"  # on the frontier, beats none


def test_head_against_ffn_runtime_at_equal_macs():
    assert "head pruning faster" in heads_faster_than_ffn(table(), 20)["ours"]
    same = {(m, d): {"real_time_factor": 0.1} for m, d, *_ in ROWS if m in ("heads", "ffn")}
    row = heads_faster_than_ffn(table(same), 20)
    assert row["verdict"] == "not reproduced" and "no clear difference" in row["ours"]
    slower = {(m, d): {"real_time_factor": 0.2} for m, d, *_ in ROWS if m == "heads"}
    row = heads_faster_than_ffn(table(slower), 20)
    assert row["verdict"] == "not reproduced" and "FFN pruning faster" in row["ours"]
    out_of_range = {(m, d): {"macs_per_second": 2e9} for m, d, *_ in ROWS if m == "heads"}
    assert heads_faster_than_ffn(table(out_of_range), 20)["verdict"] == "not measured"


def test_combined_recipe_against_its_student():
    row = combined_beats_distillation(table(), 20)
    assert row["ours"].startswith("combined-0.2 vs distill-0.5")  # the 3-of-6-layer student it started from
    assert combined_beats_distillation(table({("combined", 0.2): {"sid_accuracy": 40.0}}), 20)["verdict"] == (
        "different")
    assert combined_beats_distillation(table({("combined", 0.2): {"macs_per_second": 0.6e9}}), 20)["verdict"] == (
        "not reproduced")


def test_ablations_are_left_out():
    ablation = pd.DataFrame([{"model": "distill-0.5 (student, masked input)", "method": "distill", "frame_ms": 20,
                              "density": 0.5, "per": 90.0, "sid_accuracy": 1.0, "real_time_factor": 0.001,
                              "macs_per_second": 1.0, "nonzero_params": 1.0}])
    with_ablation = pd.concat([table(), ablation], ignore_index=True)
    assert all_verdicts(with_ablation, 20).equals(all_verdicts(table(), 20))


def test_keeps_and_kept_down_to():
    assert keeps(42.0, 40.0, "PR") and not keeps(42.1, 40.0, "PR")
    assert keeps(57.0, 60.0, "SID") and not keeps(56.9, 60.0, "SID")
    assert kept_down_to([0.8, 0.5, 0.3], [40, 41, 50], 40.0, "PR") == (0.5, 0.3)
    assert kept_down_to([0.8, 0.5], [40, 41], 40.0, "PR") == (0.5, None)
    assert kept_down_to([0.8, 0.5], [50, 41], 40.0, "PR") == (None, 0.8)


@pytest.mark.parametrize("verdict", VERDICTS)
def test_every_verdict_is_reachable_through_all_verdicts(verdict):
    tables = [table(), table().iloc[0:0], table({("distill", 0.5): {"per": 41.0}}),
              table({("weight", 0.8): {"per": 50.0}})]
    assert any(verdict in set(all_verdicts(t, 20)["verdict"]) for t in tables)


# -- the title question ----------------------------------------------------------------------------------------
def test_relative_cost_divides_by_the_dense_model_of_the_same_rate():
    from compress_lib.verdicts import relative_cost

    t = pd.concat([table(), table({("dense", 1.0): {"real_time_factor": 0.2}}, frame_ms=10)], ignore_index=True)
    rel = relative_cost(t, 20)
    heads = rel[rel["model"] == "heads-0.5"].iloc[0]
    assert heads["macs_fraction"] == pytest.approx(0.85) and heads["params_fraction"] == pytest.approx(0.85)
    assert heads["rtf_fraction"] == pytest.approx(0.7)
    assert relative_cost(t, 10).set_index("model").loc["heads-0.5", "rtf_fraction"] == pytest.approx(0.35)
    weight = rel[rel["method"] == "weight"]
    assert list(weight["density"]) == sorted(weight["density"], reverse=True)  # densest first
    assert (weight["rtf_fraction"] == 1.0).all() and weight["macs_fraction"].min() == pytest.approx(0.2)
    assert relative_cost(table(drop("dense")), 20).empty  # no dense model: no fractions, nothing made up


def test_rank_correlation():
    from compress_lib.verdicts import rank_correlation

    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert pd.isna(rank_correlation([1, 2], [1, 2])) and pd.isna(rank_correlation([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError, match="one length"):
        rank_correlation([1, 2, 3], [1, 2])
