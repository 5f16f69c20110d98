"""Two-stage pretraining: presets, schedule, the run folder, resuming after kill -9, the targets record."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from compress_lib.checkpoint import load_checkpoint
from compress_lib.cli import main
from compress_lib.config import MODEL_PRESETS
from compress_lib.errors import CompressLibError
from compress_lib.presets import PRESET_NAMES
from compress_lib.pretrain import (
    PRETRAIN_PRESETS,
    default_stage2_layer,
    learning_rate,
    load_pretraining_data,
    pretrain,
    pretrain_settings,
)

REPO = Path(__file__).resolve().parents[1]


def test_every_preset_has_every_setting():
    keys = set(PRETRAIN_PRESETS["paper"])
    for name in PRESET_NAMES:
        assert set(PRETRAIN_PRESETS[name]) == keys, name
        assert name in MODEL_PRESETS
        for frame_ms in (10, 20):
            s = pretrain_settings(name, frame_ms)
            assert all(not isinstance(v, dict) for v in s.values())
    with pytest.raises(CompressLibError, match="schedule"):
        pretrain_settings("smoke", schedule="exponential")


def test_paper_preset_is_the_papers_recipe():
    for frame_ms, crop in ((10, 1500), (20, 750)):
        s = pretrain_settings("paper", frame_ms)
        assert (s["lr"], s["batch_size"] * s["grad_accum"], s["clip_norm"], s["crop_frames"]) == (1e-4, 32, 10.0, crop)
        assert (s["schedule"], s["warmup_steps"], s["stage2_layer"]) == ("constant", 0, 9)
        assert s["stage1_clusters"] == s["stage2_clusters"] == 512
    assert pretrain_settings("paper", 10)["stage2_steps"] == 2 * pretrain_settings("paper", 20)["stage2_steps"]


def test_learning_rate_schedules():
    assert learning_rate(0, 1.0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert learning_rate(9, 1.0, 100, warmup_steps=10) == pytest.approx(1.0)
    assert learning_rate(50, 1.0, 100, 10, "constant") == 1.0
    assert learning_rate(55, 1.0, 100, 10, "linear") == pytest.approx(0.5)
    assert learning_rate(55, 1.0, 100, 10, "cosine") == pytest.approx(0.5)
    assert learning_rate(99, 1.0, 100, 10, "cosine") < 0.01


def test_stage2_layer_scales_with_depth():
    assert [default_stage2_layer(n) for n in (12, 8, 6, 4, 2, 1)] == [9, 6, 4, 3, 2, 1]


def _weights(path):
    return load_checkpoint(path).model.state_dict()


@pytest.mark.slow
def test_two_stage_smoke_run(smoke_corpus, tmp_path):
    out = tmp_path / "run"
    final = pretrain(smoke_corpus, out, "smoke", frame_ms=20, seed=0, progress=False)
    assert final == out / "model.pt"
    for name in ("random_init.pt", "stage1/model.pt", "stage1/log.csv", "stage2/model.pt", "stage2/log.csv",
                 "stage2/targets.pt", "pretrain.json"):
        assert (out / name).is_file(), name
    meta = load_checkpoint(final).meta
    s = PRETRAIN_PRESETS["smoke"]
    assert {k: meta[k] for k in ("preset", "frame_ms", "stage", "steps", "seed")} == \
        {"preset": "smoke", "frame_ms": 20, "stage": 2, "steps": s["stage2_steps"], "seed": 0}
    assert meta["final_loss"] > 0 and meta["targets"]["layer"] == default_stage2_layer(MODEL_PRESETS["smoke"]["num_layers"])
    rows = list(csv.DictReader(open(out / "stage1" / "log.csv")))
    assert len(rows) == s["stage1_steps"] and {"loss", "accuracy", "lr", "elapsed_s"} <= set(rows[0])
    # the untrained twin starts from exactly the stage-1 initial weights (scratch init)
    twin = load_checkpoint(out / "random_init.pt")
    assert twin.meta["steps"] == 0 and twin.config.num_clusters == s["stage1_clusters"]

    # the compression helpers fine-tune on the very targets the model was trained on
    feats, targets = load_pretraining_data(smoke_corpus, final)
    cached = torch.load(out / "stage2" / "targets.pt", weights_only=True)["targets"]
    assert len(feats) == len(targets) == len(cached) and all(torch.equal(a, b) for a, b in zip(targets, cached))
    (out / "stage2" / "targets.pt").unlink()  # without the cache they are recomputed identically
    _, recomputed = load_pretraining_data(smoke_corpus, final)
    assert all(torch.equal(a, b) for a, b in zip(targets, recomputed))
    _, stage1_targets = load_pretraining_data(smoke_corpus, out / "stage1" / "model.pt")
    assert max(int(t.max()) for t in stage1_targets) < s["stage1_clusters"]

    # a finished run is not trained again; other settings in the same folder are refused
    before = (out / "model.pt").stat().st_mtime_ns
    stage2_before = (out / "stage2" / "model.pt").stat().st_mtime_ns
    pretrain(smoke_corpus, out, "smoke", frame_ms=20, seed=0, progress=False)
    assert (out / "stage2" / "model.pt").stat().st_mtime_ns == stage2_before
    assert (out / "model.pt").stat().st_mtime_ns >= before
    with pytest.raises(CompressLibError, match="other settings"):
        pretrain(smoke_corpus, out, "smoke", frame_ms=20, seed=1, progress=False)


def test_stage2_needs_stage1(smoke_corpus, tmp_path, capsys):
    code = main(["pretrain", "--preset", "smoke", "--data", str(smoke_corpus), "--out", str(tmp_path / "r"),
                 "--stage", "2", "--no-progress"])
    assert code == 2 and "--stage 1" in capsys.readouterr().err


def test_a_preset_of_one_stage_stops_after_stage_1(smoke_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(PRETRAIN_PRESETS, "smoke", {**PRETRAIN_PRESETS["smoke"], "stages": (1,)})
    final = pretrain(smoke_corpus, tmp_path / "r", preset="smoke", frame_ms=20, progress=False)
    assert not (tmp_path / "r" / "stage2").exists() and (tmp_path / "r" / "stage1" / "model.pt").is_file()
    assert load_checkpoint(final).meta["stage"] == 1
    monkeypatch.setitem(PRETRAIN_PRESETS, "smoke", {**PRETRAIN_PRESETS["smoke"], "stages": (2,)})
    with pytest.raises(CompressLibError, match="stages"):
        pretrain_settings("smoke")
    assert pretrain_settings("study")["stages"] == (1,) and pretrain_settings("paper")["stages"] == (1, 2)


def test_pretrained_checkpoint_without_targets_record(tmp_path, smoke_corpus):
    from compress_lib.checkpoint import save_checkpoint
    from compress_lib.config import config_for_preset
    from compress_lib.model import MelHuBERT

    save_checkpoint(tmp_path / "m.pt", MelHuBERT(config_for_preset("smoke")))
    with pytest.raises(CompressLibError, match="no pretraining targets"):
        load_pretraining_data(smoke_corpus, tmp_path / "m.pt")


# A smoke run made longer so that it can be killed mid-way; run as a separate process.
RUNNER = """
import sys
from compress_lib.pretrain import PRETRAIN_PRESETS
from compress_lib.cli import main
PRETRAIN_PRESETS["smoke"].update(stage1_steps=30, save_every=3)
sys.exit(main(["pretrain", "--preset", "smoke", "--stage", "1", "--no-progress", "--data", sys.argv[1],
               "--out", sys.argv[2]]))
"""


def _runner(data, out):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(data), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_weights(smoke_corpus, tmp_path):
    reference = _runner(smoke_corpus, tmp_path / "reference")
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()

    killed = _runner(smoke_corpus, tmp_path / "killed")
    state = tmp_path / "killed" / "stage1" / "state.pt"
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "stage1" / "model.pt").exists(), "the run ended before it could be killed"
    assert torch.load(state, weights_only=True)["step"] < 30

    resumed = _runner(smoke_corpus, tmp_path / "killed")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    a, b = _weights(tmp_path / "reference" / "model.pt"), _weights(tmp_path / "killed" / "model.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
