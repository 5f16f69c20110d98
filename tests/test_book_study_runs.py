"""The study's compression, downstream, efficiency and deployment notebooks run end to end at the smoke preset
(`tools/run_study.py --only ...`). Apart from tests/test_book_study.py, whose other smoke runs take as long, so
that `make test`'s two workers (pytest-xdist, one file each at a time) share the work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import run_study  # noqa: E402
from test_book_study import study_args  # noqa: E402

COMPRESSION_NOTEBOOKS = {  # notebook -> its results table
    "03_weight_pruning": "weight", "04_head_pruning": "heads", "05_lowrank": "ffn", "06_distillation": "distill",
    "07_combined": "combined",
}


@pytest.mark.slow
def test_smoke_run_of_the_compression_notebooks(tmp_path):
    """03..07 at the smoke preset, in one work folder: each makes the corpus and teachers it finds missing,
    07 reuses the students of 06, and every checkpoint of the results tables exists; 08 then evaluates PR and
    SID of the references and of trajectory points of every method into the study's summary.csv, dropping a row an
    earlier run left; 09 times every model in turns and 11 compares runtime with size."""
    import pandas as pd

    from compress_lib.results import update_summary

    results, work = tmp_path / "results" / "smoke", tmp_path / "work" / "smoke"
    update_summary(results / "summary.csv", {"model": "distill-0.999", "method": "distill", "frame_ms": 20, "per": 1.0})
    update_summary(results / "summary.csv", {"model": "mine", "method": "zoo", "frame_ms": 20, "per": 2.0})
    notebooks = (*COMPRESSION_NOTEBOOKS, "08_downstream", "09_efficiency", "11_smaller_faster")
    assert run_study.main(study_args(tmp_path, "--only", *notebooks)) == 0
    for stem, name in COMPRESSION_NOTEBOOKS.items():
        table = pd.read_csv(results / stem / f"{name}.csv")
        assert set(table["frame_ms"]) == {10, 20} and len(table) >= 4, stem
        assert all((work / c).is_file() for c in table["checkpoint"]), stem
        summary = json.loads((results / stem / "summary.json").read_text())
        assert summary["parameters"]["frame_rates"] == [10, 20] and summary["parameters"]["preset"] == "smoke"
    assert set(pd.read_csv(results / "06_distillation" / "distill.csv")["variant"]) == {"student", "truncation"}
    students = json.loads((results / "07_combined" / "summary.json").read_text())["students"]
    assert all(s.endswith("model.pt") and "distill-" in s for s in students.values())  # 06's students, reused
    summary = pd.read_csv(results / "summary.csv")
    assert "distill-0.999" not in set(summary["model"])  # an earlier run's row never stands in for a result
    assert summary.loc[summary["model"] == "mine", "per"].tolist() == [2.0]  # another method's row stays
    summary = summary[summary["model"] != "mine"]
    expected = {"fbank", "random-init", "dense", "weight", "heads", "ffn", "distill", "truncate", "combined"}
    assert set(summary["method"]) == expected and set(summary["frame_ms"]) == {10, 20}
    assert summary["per"].between(0, 200).all() and summary["sid_accuracy"].between(0, 100).all()
    assert (summary.loc[summary["method"] != "fbank", "macs_per_second"] > 0).all()
    downstream = json.loads((results / "08_downstream" / "summary.json").read_text())
    assert downstream["sanity"]["judged"] is False and downstream["not_evaluated"] == []
    efficiency = json.loads((results / "09_efficiency" / "summary.json").read_text())
    assert efficiency["paper_size_matches_released_checkpoint"] is True
    cost = pd.read_csv(results / "08_downstream" / "evaluation_cost.csv")
    # CPU minutes rounded to 0.1: a fast machine's smoke evaluation rounds to 0.0, so only "recorded" is checked
    assert set(cost["task"]) == {"pr", "sid"} and cost["cpu_total"].notna().all() and (cost["cpu_total"] >= 0).all()
    assert cost["evaluations"].sum() == 2 * len(summary[summary["method"] != "fbank"]) + 4  # fbank: 2 rates x 2

    timings = pd.read_csv(results / "09_efficiency" / "model_timings.csv")  # every model with a cost, in turns
    timed = summary.dropna(subset=["real_time_factor"])
    assert len(timings) == len(timed) and (timings["repeats"] == 2).all()
    merged = timed.merge(timings, on=["model", "frame_ms"], suffixes=("", "_pass"))
    assert (merged["real_time_factor"] == merged["real_time_factor_pass"]).all()  # the table holds the pass's
    answers = json.loads((results / "11_smaller_faster" / "summary.json").read_text())["answers"]
    assert {a["frame_ms"] for a in answers} == {10, 20}

    # 14 on two methods at 20 ms (each ONNX export takes seconds): every such model in the three runtimes, ORT's
    # hidden states equal to PyTorch's, int8 the same MACs in fewer bytes, each int8 model evaluated downstream
    import papermill

    papermill.execute_notebook(
        str(ROOT / "notebooks" / "14_deployment.ipynb"), str(tmp_path / "14.ipynb"), kernel_name="python3",
        cwd=str(ROOT), progress_bar=False, parameters={
            "preset": "smoke", "frame_rates": "20", "methods": "dense,distill",
            "data_dir": str(tmp_path / "work" / "corpus-0.02"), "work_dir": str(work),
            "output_dir": str(results / "14_deployment")})
    deployed = pd.read_csv(results / "14_deployment" / "deployment.csv")
    main_rows = timed[timed["method"].isin(["dense", "distill"]) & (timed["frame_ms"] == 20)]
    assert len(main_rows) == 3 and len(deployed) == 3 * len(main_rows)
    assert (deployed.groupby("runtime").size() == len(main_rows)).all()
    differences = deployed["max_abs_difference"].dropna()
    assert len(differences) == len(main_rows) and (differences <= 1e-4).all()
    by_runtime = deployed.pivot_table(index="model", columns="runtime", values=["macs_per_second", "model_bytes"])
    assert (by_runtime["macs_per_second"]["onnxruntime-int8"] == by_runtime["macs_per_second"]["eager"]).all()
    assert (by_runtime["model_bytes"]["onnxruntime-int8"] < by_runtime["model_bytes"]["onnxruntime"]).all()
    int8_scored = deployed[(deployed["runtime"] == "onnxruntime-int8") & deployed["per"].notna()]
    assert sorted(int8_scored["method"]) == ["dense", "distill"]
    assert int8_scored["sid_accuracy"].between(0, 100).all()
    verdicts = pd.read_csv(results / "14_deployment" / "verdicts.csv")
    assert list(verdicts["id"]) == ["int8", "ort", "ranking"] and set(verdicts["frame_ms"]) == {20}
