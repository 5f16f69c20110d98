"""Checkpoints: self-describing, atomic, and clear errors for another architecture or a damaged file."""

import pytest
import torch

from compress_lib.checkpoint import atomic_torch_save, load_checkpoint, save_checkpoint
from compress_lib.config import config_for_preset
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT


def test_roundtrip_rebuilds_the_architecture_without_restating_sizes(tmp_path):
    cfg = config_for_preset("smoke", 10).replace(layer_heads=[2, 0, 1, 2], layer_ffn_dims=[64, 8, 0, 64])
    model = MelHuBERT(cfg)
    masks = {"layers.0.fc1.weight": torch.rand_like(model.layers[0].fc1.weight) > 0.5}
    save_checkpoint(tmp_path / "m.pt", model, masks=masks, stage=1, final_loss=2.5)
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.config == cfg
    assert ckpt.meta == {"stage": 1, "final_loss": 2.5}
    assert torch.equal(ckpt.masks["layers.0.fc1.weight"], masks["layers.0.fc1.weight"])
    for (k, v), (k2, v2) in zip(model.state_dict().items(), ckpt.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.randn(1, 12, 40)
    torch.testing.assert_close(model.eval()(x).logits, ckpt.model(x).logits)


def test_other_architecture_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "m.pt", MelHuBERT(config_for_preset("smoke", 20)))
    with pytest.raises(CompressLibError, match="another architecture"):
        load_checkpoint(tmp_path / "m.pt", expect_config=config_for_preset("smoke", 10))


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", None])
def test_corrupt_or_missing_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "m.pt"
    if content is None:
        save_checkpoint(path, MelHuBERT(config_for_preset("smoke", 20)))
        path.write_bytes(path.read_bytes()[:1000])  # truncated, as after a crash without atomic writes
    else:
        path.write_bytes(content)
    with pytest.raises(CompressLibError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CompressLibError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_foreign_checkpoints_are_named(tmp_path):
    torch.save({"model": {}, "Upstream_Config": {}}, tmp_path / "public.ckpt")
    with pytest.raises(CompressLibError, match="import-checkpoint"):
        load_checkpoint(tmp_path / "public.ckpt")
    good = tmp_path / "m.pt"
    save_checkpoint(good, MelHuBERT(config_for_preset("smoke", 20)))
    obj = torch.load(good, weights_only=True)
    obj["state_dict"]["layers.0.fc1.weight"] = torch.zeros(3, 3)
    torch.save(obj, tmp_path / "damaged.pt")
    with pytest.raises(CompressLibError, match="damaged"):
        load_checkpoint(tmp_path / "damaged.pt")


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.pt"
    atomic_torch_save({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"step": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left behind


def test_saved_checkpoints_get_a_plain_files_permissions(tmp_path):
    """Atomic saves go through a private temp file; the checkpoint itself is readable like any file written."""
    import os

    from compress_lib.checkpoint import atomic_torch_save

    atomic_torch_save({"x": 1}, tmp_path / "a.pt")
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o666 & ~mask
