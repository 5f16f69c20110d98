"""The deployment table's helpers and verdict rules (compress_lib.deployment), on small hand-made tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compress_lib import deployment

RUNTIMES = ("eager", "onnxruntime", "onnxruntime-int8")
MODELS = {  # model -> (method, density, MACs per second, eager real-time factor)
    "dense": ("dense", 1.0, 100.0, 1.00),
    "weight-0.3": ("weight", 0.3, 40.0, 1.00),
    "heads-0.5": ("heads", 0.5, 80.0, 0.80),
    "ffn-0.5": ("ffn", 0.5, 70.0, 0.75),
    "distill-0.5": ("distill", 0.5, 50.0, 0.45),
    "combined-0.2": ("combined", 0.2, 20.0, 0.25),
}


def table(ort=None, int8=None, quality=None, frame_ms=20) -> pd.DataFrame:
    """A deployment table: ORT fp32 / int8 real-time factors as a factor of eager's (a number, or a dict per
    model), int8 quality as {model: (per, sid)} beside eager's PER 30 / SID 60."""
    ort, int8, quality = ort or 0.8, int8 or 0.5, quality or {}
    rows = []
    for model, (method, density, macs, rtf) in MODELS.items():
        for runtime, factor in zip(RUNTIMES, (1.0, ort, int8)):
            factor = factor.get(model, 1.0) if isinstance(factor, dict) else factor
            per, sid = (30.0, 60.0) if runtime == "eager" else quality.get(model, (None, None)) if runtime == \
                "onnxruntime-int8" else (None, None)
            rows.append({"model": model, "method": method, "density": density, "frame_ms": frame_ms,
                         "runtime": runtime, "params": macs * 1000, "macs_per_second": macs,
                         "model_bytes": macs * 4000 * (0.3 if runtime.endswith("int8") else 1.0),
                         "real_time_factor": rtf * factor, "per": per, "sid_accuracy": sid})
    return deployment.deployment_frame(rows)


def test_deployment_frame_has_the_schema_and_numbers():
    frame = deployment.deployment_frame([{"model": "dense", "runtime": "eager", "per": "31.5", "threads": "1"}])
    assert list(frame.columns) == list(deployment.DEPLOYMENT_COLUMNS)
    assert frame.loc[0, "per"] == 31.5 and math.isnan(frame.loc[0, "real_time_factor"])


def test_models_to_deploy_keeps_main_rows_with_a_cost_and_a_checkpoint():
    summary = pd.DataFrame({
        "model": ["dense", "heads-0.5", "distill-0.5 (student, masked input)", "fbank", "ffn-0.5", "dense"],
        "method": ["dense", "heads", "distill", "fbank", "ffn", "dense"], "density": [1, 0.5, 0.5, None, 0.5, 1],
        "frame_ms": [20, 20, 20, 20, 20, 10], "real_time_factor": [1.0, 0.8, 0.5, None, None, 2.0]})
    checkpoints = pd.DataFrame({"model": ["dense", "heads-0.5", "distill-0.5 (student, masked input)", "dense"],
                                "frame_ms": [20, 20, 20, 10], "checkpoint": ["a.pt", "b.pt", "c.pt", None]})
    models = deployment.models_to_deploy(summary, checkpoints)
    assert list(zip(models["model"], models["frame_ms"])) == [("dense", 20), ("heads-0.5", 20)]


def test_int8_quality_models_are_the_dense_one_and_each_methods_sparsest():
    models = pd.DataFrame({"model": ["dense", "heads-0.5", "heads-0.25", "weight-0.3", "ffn-0.5", "dense"],
                           "method": ["dense", "heads", "heads", "weight", "ffn", "dense"],
                           "density": [1, 0.5, 0.25, 0.3, 0.5, 1], "frame_ms": [20, 20, 20, 20, 20, 10]})
    picked = deployment.int8_quality_models(models, 20)
    assert list(picked["model"]) == ["dense", "heads-0.25", "ffn-0.5"]
    assert deployment.int8_quality_models(models, 10)["model"].tolist() == ["dense"]


def test_int8_verdict_needs_speed_and_quality():
    kept = {m: (30.5, 58.0) for m in ("dense", "heads-0.5")}
    assert deployment.int8_speeds_up(table(int8=0.5, quality=kept), 20)["verdict"] == "reproduced"
    assert deployment.int8_speeds_up(table(int8=0.7, quality=kept), 20)["verdict"] == "different"  # 1.14x only
    lost = {"dense": (35.0, 60.0)}
    row = deployment.int8_speeds_up(table(int8=0.5, quality=lost), 20)
    assert row["verdict"] == "different" and "dense PR (30.0 -> 35.0)" in row["ours"]
    assert deployment.int8_speeds_up(table(int8=0.7, quality=lost), 20)["verdict"] == "not reproduced"
    assert deployment.int8_speeds_up(table(int8=0.5), 20)["verdict"] == "not measured"  # no quality at this rate
    assert deployment.int8_speeds_up(table(), 10)["verdict"] == "not measured"
    assert "1.60x faster" in deployment.int8_speeds_up(table(int8=0.5, quality=kept), 20)["ours"]


def test_structured_savings_hold_weaken_or_vanish():
    assert deployment.structured_savings_carry_over(table(ort=0.8), 20)["verdict"] == "reproduced"
    weakens = {m: 1.5 for m in MODELS if m not in ("dense", "weight-0.3")}  # distill 0.45 -> 0.68: weaker
    weakens.update({"heads-0.5": 1.0, "ffn-0.5": 1.0})
    row = deployment.structured_savings_carry_over(table(ort=weakens), 20)
    assert row["verdict"] == "different" and "distill-0.5 x0.45 eager, x0.68 ORT: weakens" in row["ours"]
    vanishes = {"heads-0.5": 1.25}  # 0.80 -> 1.00 of the dense model
    assert deployment.structured_savings_carry_over(table(ort=vanishes), 20)["verdict"] == "not reproduced"
    assert deployment.structured_savings_carry_over(table(), 10)["verdict"] == "not measured"


def test_runtime_ranking_is_judged_by_rank_correlation():
    assert deployment.runtime_ranking_holds(table(ort=0.8, int8=0.5), 20)["verdict"] == "reproduced"
    shuffled = {"dense": 0.2, "heads-0.5": 0.4, "combined-0.2": 3.5, "distill-0.5": 2.0}
    assert deployment.runtime_ranking_holds(table(ort=shuffled, int8=0.5), 20)["verdict"] == "different"
    assert deployment.runtime_ranking_holds(table(ort=shuffled, int8=shuffled), 20)["verdict"] == "not reproduced"
    assert deployment.runtime_ranking_holds(table(), 10)["verdict"] == "not measured"


def test_verdicts_table_and_runtime_picture_cover_every_runtime():
    verdicts = deployment.deployment_verdicts(table(), 20)
    assert list(verdicts["id"]) == ["int8", "ort", "ranking"] and set(verdicts["frame_ms"]) == {20}
    picture = deployment.runtime_picture(table(ort=0.8), 20).set_index("runtime")
    assert list(picture.index) == list(RUNTIMES)
    assert picture.loc["eager", "weight_pruning"] == pytest.approx(1.0)
    # heads at 80 MACs: 0.80; the FFN curve (ffn 70 -> 0.75, dense 100 -> 1.0) at 80 MACs: 0.8333
    assert picture.loc["eager", "heads_vs_ffn"] == pytest.approx(0.80 / (0.75 + (1.0 - 0.75) / 3))
    # runtime per MAC: depth (distill 0.45 / 0.5) over width (geometric mean of heads 0.8 / 0.8, ffn 0.75 / 0.7)
    width = math.sqrt(1.0 * (0.75 / 0.7))
    assert picture.loc["eager", "depth_vs_width"] == pytest.approx(0.9 / width)


def test_figure_rows_and_quality_comparison():
    rows = deployment.figure_rows(table(int8=0.5)).set_index(["model", "runtime"])
    assert rows.loc[("dense", "eager"), "relative_runtime"] == 1.0
    assert rows.loc[("dense", "onnxruntime-int8"), "relative_runtime"] == 0.5
    assert rows.loc[("ffn-0.5", "eager"), "macs_fraction"] == pytest.approx(0.7)
    assert rows.loc[("dense", "onnxruntime-int8"), "bytes_fraction"] == pytest.approx(0.3)
    comparison = deployment.quality_comparison(table(int8=0.5, quality={"dense": (31.0, 57.0)}))
    assert comparison.loc[("dense", 20)].to_dict() == {
        "PER": 30.0, "PER int8": 31.0, "ΔPER": 1.0, "SID": 60.0, "SID int8": 57.0, "ΔSID": -3.0, "speed-up": 1.6,
        "bytes": 0.3}
    assert len(comparison) == 1
