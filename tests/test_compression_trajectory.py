"""The compression trajectories at smoke scale: every method end to end, resuming, bad input, the CLI."""

import json

import pytest
from conftest import run_method
import torch

import compress_lib.training as training
from compress_lib.checkpoint import load_checkpoint, save_checkpoint
from compress_lib.cli import main
from compress_lib.compression import METHODS, RUNNERS, load_trajectory
from compress_lib.config import config_for_preset
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run fastest on one thread
run = run_method  # conftest: one smoke trajectory on the module's teacher_and_data


@pytest.mark.parametrize("method", METHODS)
def test_each_method_produces_a_trajectory(method, teacher_and_data, tmp_path):
    points = run(method, teacher_and_data, tmp_path / method)
    record = load_trajectory(tmp_path / method)
    assert record["method"] == method and record["points"] == points and record["density_of"]
    assert len(points) >= 2
    densities = [p["density"] for p in points]
    if method in ("weight", "heads", "ffn", "combined"):
        assert densities == sorted(densities, reverse=True) and densities[-1] < densities[0]
        assert [p["steps"] for p in points] == sorted(p["steps"] for p in points)
    for p in points:
        assert 0 < p["density"] <= 1 and p["loss"] >= 0 and p["elapsed_s"] >= 0
        ckpt = load_checkpoint(tmp_path / method / p["checkpoint"])
        assert ckpt.config.layer_heads == p["structure"]["layer_heads"]
        assert ckpt.config.layer_ffn_dims == p["structure"]["layer_ffn_dims"]
        assert (ckpt.masks is not None) == (method == "weight" and p["index"] > 0)
    assert not list((tmp_path / method).glob("stages/*/*.pt"))  # stage scratch files are cleaned up


def test_structured_points_shrink_physically(teacher_and_data, tmp_path):
    heads = run("heads", teacher_and_data, tmp_path / "h")
    assert [sum(p["structure"]["layer_heads"]) for p in heads] == [8, 6, 4]  # keep-best: 1 head per layer stays
    assert heads[-1]["structure"]["parameters"] < heads[0]["structure"]["parameters"]
    ffn = run("ffn", teacher_and_data, tmp_path / "f")
    assert [p["structure"]["layer_ffn_dims"] for p in ffn] == [[64] * 4, [48] * 4, [32] * 4]
    weight = run("weight", teacher_and_data, tmp_path / "w")
    assert [p.get("target_density", 1.0) for p in weight] == [1.0, 0.8, 0.7, 0.6, 0.5]
    assert [round(p["density"], 4) for p in weight] == [1.0, 0.8, 0.7, 0.6, 0.5]  # exact up to one weight
    first, last = weight[0]["structure"], weight[-1]["structure"]
    assert last["parameters"] == first["parameters"] and last["nonzero_parameters"] < first["nonzero_parameters"]
    assert last["macs_per_second"] < first["macs_per_second"]  # masked weights are not counted
    assert heads[-1]["structure"]["macs_per_second"] < heads[0]["structure"]["macs_per_second"]
    mask_ckpt = load_checkpoint(tmp_path / "w" / weight[-1]["checkpoint"])
    params = dict(mask_ckpt.model.named_parameters())
    assert all(torch.all(params[n][~m] == 0) for n, m in mask_ckpt.masks.items())  # fine-tuning kept them zero


class Interrupted(Exception):
    pass


# crash_at n > 0: die right after the n-th resumable save (mid-stage or at a stage's end, before its point is
# recorded); n < 0: die just before the |n|-th save (a stage pruned but not yet trained)
@pytest.mark.parametrize("method,crash_at", [("weight", 3), ("heads", 3), ("heads", -1), ("combined", 2),
                                             ("combined", 3), ("distill", 1)])
def test_interrupted_trajectory_resumes_to_the_same_result(method, crash_at, teacher_and_data, tmp_path,
                                                           monkeypatch):
    reference = run(method, teacher_and_data, tmp_path / "ref")
    real_save = training.save_state
    saves = []

    def crashing_save(*args, **kwargs):
        saves.append(1)
        if len(saves) == -crash_at:
            raise Interrupted
        real_save(*args, **kwargs)
        if len(saves) == crash_at:
            raise Interrupted

    monkeypatch.setattr(training, "save_state", crashing_save)
    with pytest.raises(Interrupted):
        run(method, teacher_and_data, tmp_path / "resumed")
    assert list((tmp_path / "resumed").glob("stages/*/st*.pt"))  # a stage was left half done
    monkeypatch.setattr(training, "save_state", real_save)
    resumed = run(method, teacher_and_data, tmp_path / "resumed")
    keys = ("stage", "density", "loss", "pretrain_loss", "steps", "structure")
    assert [{k: p[k] for k in keys} for p in resumed] == [{k: p[k] for k in keys} for p in reference]
    a = load_checkpoint(tmp_path / "ref" / reference[-1]["checkpoint"]).model.state_dict()
    b = load_checkpoint(tmp_path / "resumed" / resumed[-1]["checkpoint"]).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rerun_is_a_no_op_and_a_lower_target_extends(teacher_and_data, tmp_path):
    first = run("ffn", teacher_and_data, tmp_path / "f", target_density=0.75)
    assert [p["density"] for p in first] == [1.0, 0.75]
    assert run("ffn", teacher_and_data, tmp_path / "f", target_density=0.75) == first
    longer = run("ffn", teacher_and_data, tmp_path / "f", target_density=0.25)
    assert longer[:2] == first and [p["density"] for p in longer] == [1.0, 0.75, 0.5, 0.25]


def test_resuming_with_other_settings_is_an_error(teacher_and_data, tmp_path):
    run("truncate", teacher_and_data, tmp_path / "t")
    with pytest.raises(CompressLibError, match="other settings.*seed"):
        run("truncate", teacher_and_data, tmp_path / "t", seed=1)
    with pytest.raises(CompressLibError, match="'truncate' trajectory"):
        run("distill", teacher_and_data, tmp_path / "t")


def test_out_of_range_density_lists_the_valid_ones(teacher_and_data, tmp_path):
    with pytest.raises(CompressLibError, match=r"out of range for weight pruning; valid: 0\.8, 0\.7.*0\.05"):
        run("weight", teacher_and_data, tmp_path / "w", target_density=0.01)
    with pytest.raises(CompressLibError, match=r"valid: 0\.75, 0\.5$"):
        run("heads", teacher_and_data, tmp_path / "h", target_density=0.2)
    with pytest.raises(CompressLibError, match="out of range"):
        run("ffn", teacher_and_data, tmp_path / "f", target_density=1.5)


def test_the_l1_score_and_layers_losing_all_heads(teacher_and_data, tmp_path):
    points = run("heads", teacher_and_data, tmp_path / "h", head_score="l1", keep_best_head=False,
                 target_density=0.25)
    assert [sum(p["structure"]["layer_heads"]) for p in points] == [8, 6, 4, 2]
    assert 0 in points[-1]["structure"]["layer_heads"]  # 2 heads left in 4 layers


def test_distillation_ablations_are_recorded(teacher_and_data, tmp_path):
    points = run("distill", teacher_and_data, tmp_path / "d", distill_layers=(2,), distill_init="teacher",
                 distill_masked_input=True, distill_temperature=2.0)
    assert len(points) == 1
    p = points[0]
    assert (p["init"], p["masked_input"], p["temperature"], p["density"]) == ("teacher", True, 2.0, 0.5)
    assert p["loss_name"] == "distillation" and p["loss"] == p["distill_loss"]


def test_a_student_trains_on_the_batches_of_its_depth_whatever_other_depths_run(teacher_and_data, tmp_path):
    """The ablations distil only the deepest student; it must see the batches the plain student of its depth saw."""
    from compress_lib.checkpoint import load_checkpoint

    both = run("distill", teacher_and_data, tmp_path / "both")  # the smoke preset's depths, 1 and 2
    alone = run("distill", teacher_and_data, tmp_path / "alone", distill_layers=(2,))
    deep = [p for p in both if p["density"] == alone[0]["density"]]
    assert len(alone) == len(deep) == 1 and deep[0]["distill_loss"] == alone[0]["distill_loss"]
    states = [load_checkpoint(d / p["checkpoint"]).model.state_dict()
              for d, p in ((tmp_path / "both", deep[0]), (tmp_path / "alone", alone[0]))]
    assert states[0].keys() == states[1].keys() and all(states[0][k].equal(states[1][k]) for k in states[0])


def test_combined_can_start_from_a_distilled_student(teacher_and_data, tmp_path):
    distilled = run("distill", teacher_and_data, tmp_path / "d")
    student = tmp_path / "d" / distilled[1]["checkpoint"]
    points = run("combined", teacher_and_data, tmp_path / "c", student_path=student)
    assert points[0]["stage"] == "distilled student (given)" and points[0]["stage_steps"] == 0
    assert points[0]["distill_loss"] == pytest.approx(distilled[1]["distill_loss"], rel=1e-5)
    assert sum(points[-1]["structure"]["layer_heads"]) == 2 and points[-1]["structure"]["layer_ffn_dims"] == [11, 11]


def test_a_weight_pruned_teacher_continues_down_the_schedule(teacher_and_data, tmp_path):
    _, feats, targets = teacher_and_data
    first = run("weight", teacher_and_data, tmp_path / "w")
    pruned = tmp_path / "w" / first[-1]["checkpoint"]  # density 0.5
    points = RUNNERS["weight"](pruned, feats, targets, tmp_path / "w2", preset="smoke", progress=False,
                               target_density=0.4)
    assert [round(p["density"], 4) for p in points] == [0.5, 0.45, 0.4]
    with pytest.raises(CompressLibError, match="masked.*unmasked teacher"):
        RUNNERS["heads"](pruned, feats, targets, tmp_path / "h", preset="smoke")


def test_bad_data_is_refused(teacher_and_data, tmp_path):
    path, feats, targets = teacher_and_data
    with pytest.raises(CompressLibError, match="expects"):
        RUNNERS["heads"](path, [f[:, :40] for f in feats], targets, tmp_path / "x", preset="smoke")
    with pytest.raises(CompressLibError, match="cluster"):
        RUNNERS["heads"](path, feats, [t + 100 for t in targets], tmp_path / "x", preset="smoke")


# -- the command line ----------------------------------------------------------------------------------------------
@pytest.fixture
def cli_data(teacher_and_data, monkeypatch):
    import compress_lib.commands.compress as command

    _, feats, targets = teacher_and_data
    monkeypatch.setattr(command, "load_data", lambda data_dir, teacher: (feats, targets))
    return teacher_and_data[0]


def test_cli_runs_a_trajectory(cli_data, tmp_path, capsys):
    rc = main(["compress", "ffn", "--teacher", str(cli_data), "--preset", "smoke", "--out", str(tmp_path / "f"),
               "--no-progress", "--set", "finetune_steps=2", "--target-density", "0.75"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "ffn: 2 points" in out and "trajectory.json" in out
    record = json.loads((tmp_path / "f" / "trajectory.json").read_text())
    assert record["points"][-1]["stage_steps"] == 2 and record["settings"]["compress_settings"]["finetune_steps"] == 2


@pytest.mark.parametrize("argv,message", [
    (["bogus"], "unknown compression method 'bogus'; valid: weight, heads, ffn, distill, truncate, combined"),
    (["heads", "--target-density", "0.01"], "out of range for head pruning; valid: 0.75, 0.5"),
    (["distill", "--target-density", "0.5"], "--target-density applies to weight, heads, ffn"),
    (["truncate", "--frame-ms", "10"], "is a 20 ms model"),
    (["distill", "--layers", "2,x"], "not a comma-separated list"),
    (["heads", "--set", "nope=1"], "unknown compression setting 'nope'"),
    (["heads", "--set", "finetune_steps=many"], "expected an integer"),
])
def test_cli_errors_are_one_clear_line(argv, message, cli_data, tmp_path, capsys):
    rc = main(["compress", *argv, "--teacher", str(cli_data), "--preset", "smoke", "--out", str(tmp_path / "o"),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


# -- on the real smoke corpus ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_teacher(smoke_corpus, tmp_path_factory):
    """A smoke-size MelHuBERT pretrained (stage 1) on the generated smoke corpus."""
    from compress_lib.pretrain import pretrain

    return pretrain(smoke_corpus, tmp_path_factory.mktemp("pretrain") / "run", "smoke", frame_ms=20, stage=1,
                    seed=0, progress=False)


@pytest.mark.parametrize("method", ["heads", "distill", "weight"])
def test_cli_on_the_smoke_corpus(method, smoke_corpus, smoke_teacher, tmp_path, capsys):
    out = tmp_path / method
    argv = ["compress", method, "--teacher", str(smoke_teacher), "--preset", "smoke", "--out", str(out),
            "--data", str(smoke_corpus), "--no-progress"]
    assert main(argv) == 0
    first = json.loads((out / "trajectory.json").read_text())
    assert first["settings"]["frame_ms"] == 20 and len(first["points"]) >= 2
    assert all(p["pretrain_loss"] > 0 for p in first["points"])
    assert main(argv) == 0  # rerun: nothing left to do, same record
    assert json.loads((out / "trajectory.json").read_text()) == first
    assert f"{method}: {len(first['points'])} points" in capsys.readouterr().out


def test_compressing_on_other_data_than_the_teacher_was_pretrained_on_warns(capsys):
    from compress_lib.compression.context import warn_if_other_data

    warn_if_other_data("t.pt", {"run": {"data": "abc"}}, "abc")
    warn_if_other_data("t.pt", {}, "abc")  # a teacher without a recorded pretraining run: nothing to compare
    assert capsys.readouterr().err == ""
    warn_if_other_data("t.pt", {"run": {"data": "abc"}}, "xyz")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning:") and "t.pt" in err
