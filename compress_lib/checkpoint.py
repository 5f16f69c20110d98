"""Checkpoints: written atomically, self-describing, checked on load.

A model checkpoint is a `torch.save`d dict:

    {"format": "compress_lib", "version": 1, "arch": "melhubert",
     "config": MelHuBERTConfig.to_dict(), "state_dict": ..., "masks": {param_name: bool tensor} or None,
     "meta": {...free-form: method, density, losses, steps...}}

so it rebuilds without the user restating sizes. `masks` holds the binary masks of weight pruning: the
weights they cover are stored as zeros, and efficiency metrics report them as masked (non-zero counts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from compress_lib.config import MelHuBERTConfig
from compress_lib.errors import CompressLibError
from compress_lib.files import atomic_write
from compress_lib.model import MelHuBERT

FORMAT = "compress_lib"
VERSION = 1


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """Save `obj` so that `path` holds either the old or the complete new file, never a partial one."""
    atomic_write(path, lambda f: torch.save(obj, f))


def safe_torch_load(path: str | os.PathLike, what: str = "checkpoint") -> dict:
    """torch.load with one clear error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CompressLibError(f"{what} {path} does not exist; check the path (or run the step that writes it)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle of another program, ...
        if "argparse.Namespace" in str(exc):  # the public MelHuBERT code pickles its arguments in the file
            raise CompressLibError(
                f"{what} {path} is not a compress_lib checkpoint: it looks like a checkpoint of the public MelHuBERT "
                "code; convert it with `compress-lib import-checkpoint`"
            ) from None
        raise CompressLibError(
            f"{what} {path} is corrupt or not a torch file ({type(exc).__name__}); delete it and rerun the step "
            "that writes it"
        ) from None
    if not isinstance(obj, dict):
        raise CompressLibError(f"{what} {path} does not hold a dict; it was not written by compress_lib")
    return obj


@dataclass
class Checkpoint:
    model: MelHuBERT
    masks: dict[str, torch.Tensor] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def config(self) -> MelHuBERTConfig:
        return self.model.cfg


def save_checkpoint(path, model: MelHuBERT, masks: dict | None = None, **meta) -> None:
    atomic_torch_save(
        {
            "format": FORMAT,
            "version": VERSION,
            "arch": "melhubert",
            "config": model.cfg.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "masks": None if masks is None else {k: v.detach().cpu().bool() for k, v in masks.items()},
            "meta": meta,
        },
        path,
    )


def load_checkpoint(path, expect_config: MelHuBERTConfig | None = None) -> Checkpoint:
    """Rebuild a model from a compress_lib checkpoint (strict load).

    `expect_config`: if given, the checkpoint's architecture must equal it (e.g. resuming a run).
    """
    obj = safe_torch_load(path)
    if obj.get("format") != FORMAT or "config" not in obj:
        hint = ""
        if "Upstream_Config" in obj or "model" in obj:
            hint = " It looks like a checkpoint of the public MelHuBERT code: convert it with `compress-lib import-checkpoint`."
        raise CompressLibError(f"{path} is not a compress_lib checkpoint.{hint}")
    if obj.get("arch") != "melhubert":
        raise CompressLibError(f"{path} holds a {obj.get('arch')!r} model, not a MelHuBERT; pass a MelHuBERT checkpoint")
    cfg = MelHuBERTConfig.from_dict(obj["config"])
    if expect_config is not None and cfg != expect_config:
        raise CompressLibError(
            f"{path} holds another architecture ({_describe(cfg)}) than expected ({_describe(expect_config)}); "
            "use a fresh --out folder or the matching preset"
        )
    model = MelHuBERT(cfg)
    _check_weights(path, obj["state_dict"], model.state_dict())
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CompressLibError(f"{path}: weights do not match the recorded architecture ({first}); the file is damaged") from None
    model.eval()
    return Checkpoint(model=model, masks=obj.get("masks"), meta=obj.get("meta", {}))


def _check_weights(path, state: dict, expected: dict) -> None:
    """A clear error for a damaged checkpoint: a tensor of the wrong shape, or NaN / infinite weights."""
    if not isinstance(state, dict):
        raise CompressLibError(f"{path} holds no state_dict; the file is damaged: rerun the step that wrote it")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if key in expected and value.shape != expected[key].shape:
            raise CompressLibError(
                f"checkpoint {path} is damaged: {key} has shape {tuple(value.shape)} but its recorded architecture "
                f"needs {tuple(expected[key].shape)}; rerun the step that wrote it"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CompressLibError(
                f"checkpoint {path} is damaged: {key} holds NaN or infinite weights; rerun the step that wrote it "
                "(or restore the file)"
            )


def _describe(cfg: MelHuBERTConfig) -> str:
    return (
        f"{cfg.frame_ms} ms, {cfg.num_layers} layers, d={cfg.embed_dim}, heads={sum(cfg.layer_heads)}, "
        f"ffn={sum(cfg.layer_ffn_dims)}"
    )
