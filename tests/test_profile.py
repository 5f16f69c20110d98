"""`compress-lib profile`: zoo names, melhubert with structure flags, checkpoints (masks honoured), errors."""

import json

import pytest
import torch

from compress_lib.checkpoint import save_checkpoint
from compress_lib.cli import main
from compress_lib.config import config_for_preset
from compress_lib.efficiency import closed_form_macs_per_second, closed_form_num_params
from compress_lib.model import MelHuBERT
from compress_lib.zoo import ZOO

FAST = ["--seconds", "1", "--repeats", "1", "--threads", "1"]


def profile_json(capsys, *argv):
    assert main(["profile", *argv, *FAST, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # exactly one JSON object on stdout


def test_list_names_every_zoo_model(capsys):
    assert main(["profile", "--list"]) == 0
    out = capsys.readouterr().out
    for name in [*ZOO, "melhubert"]:
        assert name in out


def test_melhubert_with_structure_flags(capsys):
    flags = ["--preset", "smoke", "--layers", "2", "--heads", "1", "--ffn", "8", "--frame-ms", "10"]
    report = profile_json(capsys, "melhubert", *flags)
    cfg = config_for_preset("smoke", 10, num_layers=2, num_heads=1, ffn_dim=8, head_dim=16)
    for key in ("params", "nonzero_params", "macs_per_second", "real_time_factor", "operator_calls"):
        assert key in report
    assert report["model"] == "melhubert-10ms"
    assert report["params"] == report["nonzero_params"] == closed_form_num_params(cfg)
    assert report["macs_per_second"] == closed_form_macs_per_second(cfg)
    assert report["real_time_factor"] > 0 and report["threads"] == 1 and report["device"] == "cpu"


def test_checkpoint_masks_and_truncation(tmp_path, capsys):
    torch.manual_seed(0)
    model = MelHuBERT(config_for_preset("smoke", 20))
    masks = {"layers.0.fc1.weight": torch.rand(64, 32) < 0.25}
    with torch.no_grad():
        model.layers[0].fc1.weight.mul_(masks["layers.0.fc1.weight"])
    path = tmp_path / "pruned.pt"
    save_checkpoint(path, model, masks=masks, method="weight")
    report = profile_json(capsys, str(path))
    masked_out = int((~masks["layers.0.fc1.weight"]).sum())
    assert report["nonzero_params"] == report["params"] - masked_out
    assert report["macs_per_second"] == closed_form_macs_per_second(model, masks)
    truncated = profile_json(capsys, str(path), "--num-layers", "2")
    assert truncated["macs_per_second"] < report["macs_per_second"]
    assert truncated["params"] == closed_form_num_params(model, num_layers=2)


def test_zoo_model_text_output(capsys):
    assert main(["profile", "distilhubert", *FAST]) == 0
    out = capsys.readouterr().out
    for key in ("params", "nonzero_params", "macs_per_second", "real_time_factor", "operator_calls"):
        assert f"\n{key} " in f"\n{out}"
    assert "23,492,224" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["profile", "no-such-model"], "unknown model"),
        (["profile"], "give a MODEL"),
        (["profile", "melhubert", "--preset", "smoke", "--seconds", "0"], "--seconds"),
        (["profile", "melhubert", "--preset", "smoke", "--batch", "0"], "--batch"),
        (["profile", "melhubert", "--preset", "huge"], "preset"),
        (["profile", "melhubert", "--preset", "smoke", "--num-layers", "9"], "num_layers"),
    ],
)
def test_bad_arguments_print_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_unavailable(capsys):
    assert main(["profile", "melhubert", "--preset", "smoke", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a torch file")
    assert main(["profile", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
