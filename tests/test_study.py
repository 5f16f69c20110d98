"""compress_lib.study and compress_lib.trajectory_results: what the notebooks share (parameters, folders,
teachers; trajectory tables and figures).

The notebooks themselves run end to end at the smoke preset in tests/test_book_study.py."""

from __future__ import annotations

import json

import pytest
from conftest import make_synthetic_teacher
import torch

from compress_lib import results, study, trajectory_results
from compress_lib.checkpoint import save_checkpoint
from compress_lib.compression import RUNNERS
from compress_lib.config import config_for_preset
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory):
    """A randomly initialised smoke-size teacher and synthetic frames/targets of its shape."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_synthetic_teacher(tmp_path_factory.mktemp("teacher"), num_utterances=8)
    torch.set_num_threads(before)


# -- parameters ----------------------------------------------------------------------------------------------------
def test_frame_rates_parse_and_reject_clearly():
    assert study.parse_frame_rates("10,20", 20) == [10, 20]
    assert study.parse_frame_rates(" 20 ", 10) == [20]
    assert study.parse_frame_rates(10, 20) == [10]  # papermill passes `-p frame_rates 10` as an integer
    assert study.parse_frame_rates("", 10) == [10]
    assert study.parse_frame_rates("", (10, 20), "ablation_frame_rates") == [10, 20]  # a list fallback
    with pytest.raises(CompressLibError, match="^ablation_frame_rates must list"):
        study.parse_frame_rates("30", (10, 20), "ablation_frame_rates")
    with pytest.raises(CompressLibError, match="from 10, 20"):
        study.parse_frame_rates("10,15", 20)
    with pytest.raises(CompressLibError, match="twice"):
        study.parse_frame_rates("20,20", 20)


def test_resolve_study_defaults_and_checks(tmp_path):
    s = study.resolve_study("03_weight_pruning", "smoke", 20, "10,20", 0, "", "", str(tmp_path / "out"))
    assert s.frame_rates == (10, 20) and s.run.data_dir == "work/corpus-0.02" and s.work_dir == "work/smoke"
    assert s.to_dict()["frame_rates"] == [10, 20] and (tmp_path / "out").is_dir()
    assert study.resolve_study("x", "study", 20, "", 0, "", str(tmp_path / "w"), str(tmp_path)).run.data_dir == \
        "work/corpus"
    with pytest.raises(CompressLibError, match="under data/"):
        study.resolve_study("x", "smoke", 20, "20", 0, "", "data/results/w", str(tmp_path))
    (tmp_path / "file").write_text("")
    with pytest.raises(CompressLibError, match="not a directory"):
        study.checked_work_dir(str(tmp_path / "file"), "smoke")
    with pytest.raises(CompressLibError, match="unknown preset"):
        study.resolve_study("x", "huge", 20, "20", 0, "", "", str(tmp_path))


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, "0.5", True, float("nan")])
def test_bad_target_density_is_one_clear_error(value):
    with pytest.raises(CompressLibError, match=r"target_density must be a number in \[0, 1\)"):
        study.check_density(value)


def test_target_density_zero_means_the_presets_end():
    assert study.check_density(0) is None and study.check_density(0.3) == 0.3


def test_threads():
    before = torch.get_num_threads()
    try:
        assert study.use_threads(0, "smoke") == 1
        assert study.use_threads(2, "study") == 2
        with pytest.raises(CompressLibError, match="threads must be an integer >= 0"):
            study.use_threads(-1, "smoke")
    finally:
        torch.set_num_threads(before)


# -- folders -------------------------------------------------------------------------------------------------------
def test_method_dir_names_only_changed_settings(tmp_path):
    assert study.method_dir(tmp_path, "heads", 20, "smoke") == tmp_path / "heads-20ms"
    assert study.method_dir(tmp_path, "heads", 20, "smoke", head_score="gradient") == tmp_path / "heads-20ms"
    assert study.method_dir(tmp_path, "heads", 10, "smoke", head_score="l1", keep_best_head=False).name == \
        "heads-10ms-head_score-l1-keep_best_head-False"
    assert study.method_dir(tmp_path, "distill", 20, "study", distill_layers=(1, 3)).name == "distill-20ms"
    assert study.method_dir(tmp_path, "distill", 20, "study", distill_layers=(4,), distill_temperature=2.0).name \
        == "distill-20ms-distill_layers-4-distill_temperature-2"
    with pytest.raises(CompressLibError, match="head score"):
        study.method_dir(tmp_path, "heads", 20, "smoke", head_score="random")


def test_a_pretraining_folder_of_another_seed_is_refused(tmp_path):
    run_dir = study.pretrain_dir(tmp_path, 20)
    (run_dir / "stage1").mkdir(parents=True)
    (run_dir / "stage1" / "settings.json").write_text(json.dumps({"preset": "smoke", "seed": 0}))
    study.check_pretrain_folder(run_dir, "smoke", 0)
    with pytest.raises(CompressLibError, match="seed 0, not preset 'smoke', seed 1; pass another -p work_dir"):
        study.check_pretrain_folder(run_dir, "smoke", 1)


def test_a_complete_corpus_is_used_as_it_is(smoke_corpus):
    before = (smoke_corpus / "corpus.json").stat().st_mtime_ns
    info = study.ensure_corpus(smoke_corpus, "study")  # the study's scale differs: still no regeneration
    assert info["status"] == "complete" and (smoke_corpus / "corpus.json").stat().st_mtime_ns == before


# -- trajectories --------------------------------------------------------------------------------------------------
def test_tables_of_a_trajectory(teacher_and_data, tmp_path):
    path, feats, targets = teacher_and_data
    out = tmp_path / "work" / "weight-20ms"
    points = RUNNERS["weight"](path, feats, targets, out, preset="smoke", progress=False)
    table = trajectory_results.trajectory_table(out, tmp_path / "work")
    assert len(table) == len(points) and table["point"].tolist() == list(range(len(points)))
    assert table["checkpoint"].tolist() == [f"weight-20ms/points/{k}/model.pt" for k in range(len(points))]
    assert all((tmp_path / "work" / c).is_file() for c in table["checkpoint"])
    assert (table["nonzero_params"] < table["params"]).tolist()[1:] == [True] * (len(points) - 1)
    assert table["layer_heads"].iloc[0] == "2 2 2 2" and table["heads"].iloc[0] == 8
    assert table["converged"].iloc[1:].notna().all()

    reference = study.teacher_reference(path, feats, targets, "smoke", seed=0)
    assert reference["pretrain_loss"] == pytest.approx(points[0]["pretrain_loss"], abs=1e-6)  # same batches

    log = trajectory_results.training_log(out)
    assert set(log["point"]) == {p["index"] for p in points if p["stage_steps"]}
    ends = log.groupby("point")["total_step"].max().tolist()
    assert ends == [p["steps"] for p in points if p["stage_steps"]]  # steps counted along the trajectory

    fig = trajectory_results.loss_density_figure(table, "t", references={"teacher 20 ms": reference["pretrain_loss"]})
    assert len(fig.data) == 1 and fig.data[0].name == "weight pruning, 20 ms"
    assert list(fig.data[0].y) == table["pretrain_loss"].tolist()
    assert "MACs per second" in fig.data[0].hovertemplate and fig.layout.xaxis.autorange == "reversed"
    two = trajectory_results.loss_density_figure(table.assign(variant="a"), "t")
    assert two.data[0].name == "a, 20 ms"

    written = results.write_table(table, tmp_path / "out" / "weight.csv")
    assert written.read_text().splitlines()[0].startswith("method,frame_ms,point,stage,density,loss")


def test_a_missing_trajectory_says_how_to_make_it(tmp_path):
    with pytest.raises(CompressLibError, match="holds no trajectory"):
        trajectory_results.trajectory_table(tmp_path)
