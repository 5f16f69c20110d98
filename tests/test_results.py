"""The results table data/results/<preset>/summary.csv: exact columns, rows keyed by (model, frame_ms), merges
that never erase another step's cells, atomic and safe under concurrent writers."""

from __future__ import annotations

import csv
import multiprocessing

import pandas as pd
import pytest

from compress_lib.errors import CompressLibError
from compress_lib.results import (
    SUMMARY_COLUMNS, drop_summary_rows, read_summary, summary_frame, summary_path, update_summary,
)


def test_columns_are_exactly_those_of_the_study():
    assert SUMMARY_COLUMNS == ("model", "method", "density", "frame_ms", "params", "nonzero_params",
                               "macs_per_second", "real_time_factor", "per", "sid_accuracy", "pretrain_loss")


def test_summary_path_per_preset(tmp_path):
    assert summary_path("study", tmp_path) == tmp_path / "study" / "summary.csv"
    assert summary_path("smoke").parts[-4:] == ("data", "results", "smoke", "summary.csv")
    with pytest.raises(CompressLibError, match="unknown preset"):
        summary_path("huge", tmp_path)


def test_rows_merge_by_model_and_frame_rate(tmp_path):
    path = tmp_path / "study" / "summary.csv"
    assert read_summary(path) == []
    update_summary(path, {"model": "dense", "method": "dense", "frame_ms": 20, "density": 1.0, "per": 21.5})
    update_summary(path, {"model": "dense", "frame_ms": 20, "sid_accuracy": 61.25, "per": None})
    update_summary(path, {"model": "dense", "method": "dense", "frame_ms": 10, "per": 19.0})
    merged = update_summary(path, {"model": "fbank", "method": "fbank", "frame_ms": 20, "params": 0})
    assert merged["params"] == "0" and merged["per"] == ""

    with open(path, newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == SUMMARY_COLUMNS
    rows = read_summary(path)
    assert [(r["model"], r["frame_ms"]) for r in rows] == [("dense", "20"), ("dense", "10"), ("fbank", "20")]
    assert rows[0]["per"] == "21.5" and rows[0]["sid_accuracy"] == "61.25" and rows[0]["density"] == "1.0"
    assert rows[1]["sid_accuracy"] == "" and rows[1]["per"] == "19.0"
    assert not list(path.parent.glob("*.tmp"))

    update_summary(path, {"model": "dense", "frame_ms": 20, "per": 20.0})  # a re-evaluation replaces the cell
    assert read_summary(path)[0]["per"] == "20.0"


def test_rows_an_earlier_run_left_are_dropped_only_for_its_methods_and_rates(tmp_path):
    path = tmp_path / "summary.csv"
    assert drop_summary_rows(path, [20], ["distill"], set()) == []  # no table: nothing to drop
    for model, method, rate in [("distill-0.5", "distill", 20), ("distill-0.1667", "distill", 20),
                                ("distill-0.1667", "distill", 10), ("mine", "zoo", 20)]:
        update_summary(path, {"model": model, "method": method, "frame_ms": rate, "per": 30.0})
    dropped = drop_summary_rows(path, [20], ["dense", "distill"], {("distill-0.5", 20)})
    assert [(r["model"], r["frame_ms"]) for r in dropped] == [("distill-0.1667", "20")]
    assert [(r["model"], r["frame_ms"]) for r in read_summary(path)] == [
        ("distill-0.5", "20"), ("distill-0.1667", "10"), ("mine", "20")]  # other rates and methods stay


def test_summary_frame_reads_numbers_as_numbers_and_names_as_text(tmp_path):
    path = tmp_path / "summary.csv"
    empty = summary_frame(read_summary(path))
    assert list(empty.columns) == list(SUMMARY_COLUMNS) and empty.empty
    assert (empty.dtypes == object).all()  # as read_summary's rows give: mergeable with other empty tables
    update_summary(path, {"model": "dense", "method": "dense", "frame_ms": 20, "per": 21.5})
    table = summary_frame(read_summary(path))
    assert table.loc[0, "per"] == 21.5 and table.loc[0, "frame_ms"] == 20 and pd.isna(table.loc[0, "sid_accuracy"])
    assert table.loc[0, "model"] == "dense"


def test_bad_rows_are_refused(tmp_path):
    path = tmp_path / "summary.csv"
    with pytest.raises(ValueError, match="unknown summary columns"):
        update_summary(path, {"model": "m", "frame_ms": 20, "wer": 3.0})
    with pytest.raises(ValueError, match="needs frame_ms"):
        update_summary(path, {"model": "m", "per": 3.0})
    assert not path.exists()


def _writer(args):
    path, worker = args
    for i in range(10):
        update_summary(path, {"model": f"m{i}", "frame_ms": 20, SUMMARY_COLUMNS[4 + worker]: worker * 100 + i})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "summary.csv"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_writer, [(path, w) for w in range(4)])
    rows = {r["model"]: r for r in read_summary(path)}
    assert len(rows) == 10
    for i in range(10):
        for w in range(4):
            assert rows[f"m{i}"][SUMMARY_COLUMNS[4 + w]] == str(w * 100 + i)


def test_a_table_that_is_not_a_summary_is_never_rewritten(tmp_path):
    """Every route that writes rows (the CLI, the notebooks) refuses a summary.csv holding something else."""
    from compress_lib.errors import CompressLibError
    from compress_lib.results import update_summary

    junk = tmp_path / "summary.csv"
    junk.write_text("my,own\nnotes,here\n")
    with pytest.raises(CompressLibError, match="is not a compress_lib summary .* move it aside"):
        update_summary(junk, {"model": "dense", "frame_ms": 20, "per": 30.0})
    assert junk.read_text() == "my,own\nnotes,here\n"


def test_every_column_has_one_writer_and_only_the_timing_pass_writes_real_time_factors(tmp_path):
    from conftest import make_synthetic_teacher

    from compress_lib.downstream import load_upstream, summary_row
    from compress_lib.results import COLUMN_WRITERS

    assert tuple(COLUMN_WRITERS) == SUMMARY_COLUMNS
    assert [c for c, writer in COLUMN_WRITERS.items() if writer.startswith("09")] == ["real_time_factor"]
    upstream = load_upstream(str(make_synthetic_teacher(tmp_path, 2)[0]), name="dense")
    result = {"task": "pr", "test": 41.0}
    study_row = summary_row(upstream, result)  # what the downstream notebook writes
    assert study_row["per"] == 41.0 and study_row["params"] > 0 and study_row["macs_per_second"] > 0
    assert "real_time_factor" not in study_row
    assert summary_row(upstream, result, timed=True)["real_time_factor"] > 0  # `compress-lib evaluate` of one model
    assert set(summary_row(upstream, result, counts=False)) == {"model", "method", "frame_ms", "per", "density"}
