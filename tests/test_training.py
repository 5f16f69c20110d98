"""The shared training loop: resumes to exactly the uninterrupted weights, logs, stops early."""

import csv

import pytest
import torch

from compress_lib.config import config_for_preset
from compress_lib.model import MelHuBERT
from compress_lib.objective import CropBatcher, masked_prediction_loss
from compress_lib.training import TrainConfig, train, write_log_csv


class Interrupt(Exception):
    pass


def _setup(seed=0):
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(40, 80, generator=g) for _ in range(5)]
    targets = [torch.randint(0, 16, (40,), generator=g) for _ in range(5)]
    torch.manual_seed(seed)
    model = MelHuBERT(config_for_preset("smoke", 20))  # dropout on: the per-step reseeding must cover it
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batcher = CropBatcher(feats, targets, 30, 2, 0.14, 5, seed=seed)
    return model, optimizer, batcher


def _run(state_path, total=6, interrupt_at=None, **kwargs):
    model, optimizer, batcher = _setup()

    def after_step(m, step):
        if interrupt_at is not None and step + 1 == interrupt_at:
            raise Interrupt

    log = train(model, optimizer, lambda s, m: batcher(s, m), lambda m, b, s: masked_prediction_loss(m, b),
                TrainConfig(total_steps=total, grad_accum=2, clip_norm=1.0, seed=0, save_every=2),
                state_path=state_path, lr_fn=lambda s: 1e-3 * (s + 1) / total, after_step=after_step,
                progress=False, **kwargs)
    return model, log


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    reference, ref_log = _run(tmp_path / "a.pt")
    with pytest.raises(Interrupt):
        _run(tmp_path / "b.pt", interrupt_at=5)  # dies after step 5; the last save was at step 4
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 4
    resumed, log = _run(tmp_path / "b.pt")
    for (k, v), v2 in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, v2), k
    assert [r["loss"] for r in log] == [r["loss"] for r in ref_log]
    assert [r["step"] for r in log] == list(range(1, 7))
    assert {"loss", "accuracy", "lr", "grad_norm", "elapsed_s"} <= set(log[0])
    assert log[-1]["elapsed_s"] >= log[0]["elapsed_s"] > 0


def test_finished_run_returns_its_log_without_training(tmp_path):
    _, log = _run(tmp_path / "s.pt")
    model, again = _run(tmp_path / "s.pt")
    assert again == log


def test_stop_fn_ends_early_and_is_saved(tmp_path):
    _, log = _run(tmp_path / "s.pt", total=10, stop_fn=lambda log: len(log) >= 3)
    assert len(log) == 3
    assert torch.load(tmp_path / "s.pt", weights_only=True)["step"] == 3


def test_write_log_csv(tmp_path):
    write_log_csv([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "accuracy": 0.1}], tmp_path / "log.csv")
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert list(rows[0]) == ["step", "accuracy", "loss"]
    assert rows[1]["loss"] == "1.5" and rows[0]["accuracy"] == ""
