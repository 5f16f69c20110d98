"""Convert a checkpoint of the public MelHuBERT code (`nervjack2/MelHuBERT`, `Speech-SSL-Compression`).

The public format (see the reference notes) is a `torch.save`d dict:

    {"model": state_dict, "Upstream_Config": {"melhubert": {...}} (or {"hubert": {...}}),
     "Optimizer": ..., "Step": int, "Args": argparse.Namespace, "Runner": ...,
     optionally "Pruned_heads" (head pruning) or "Pruning" (weight pruning: `weight_orig` * `weight_mask`)}

The module names already match `compress_lib.model` apart from an `encoder.` prefix and the positional
convolution (`encoder.pos_conv.0.weight_{g,v}` -> `pos_conv.conv.parametrizations.weight.original{0,1}`).
Layer sizes are read from the weight shapes, so head-pruned and FFN-pruned checkpoints convert too; the
masks of a weight-pruned checkpoint are kept as compress_lib masks.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from compress_lib.config import MelHuBERTConfig
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT

# public name -> compress_lib name (whole-key renames; layer keys lose the `encoder.` prefix)
RENAMES = {
    "encoder.pos_conv.0.weight_g": "pos_conv.conv.parametrizations.weight.original0",
    "encoder.pos_conv.0.weight_v": "pos_conv.conv.parametrizations.weight.original1",
    "encoder.pos_conv.0.bias": "pos_conv.conv.bias",
    "encoder.layer_norm.weight": "layer_norm.weight",
    "encoder.layer_norm.bias": "layer_norm.bias",
}
SUPPORTED = {"layer_norm_first": False, "activation_fn": "gelu", "pos_emb_type": "conv", "pos_conv_depth": 1,
             "mask_before_proj": True, "learnable_mask_emb": False}


def load_public_dict(path, trust: bool = False) -> dict:
    """Read the public checkpoint; its `Args` is an argparse.Namespace, allow-listed for the safe unpickler."""
    path = Path(path)
    if not path.is_file():
        raise CompressLibError(f"checkpoint {path} does not exist; check the path")
    try:
        if trust:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        hint = "" if trust else (
            "; if it holds other Python objects and you trust its source, rerun with --trust to load it with full "
            "unpickling"
        )
        raise CompressLibError(f"cannot read {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}){hint}") \
            from None
    if not isinstance(obj, dict) or "model" not in obj or "Upstream_Config" not in obj:
        if isinstance(obj, dict) and obj.get("format") == "compress_lib":
            raise CompressLibError(f"{path} is already a compress_lib checkpoint; use it directly")
        raise CompressLibError(
            f"{path} is not a public MelHuBERT checkpoint (expected keys 'model' and 'Upstream_Config')"
        )
    return obj


def public_config(upstream_config: dict) -> dict:
    """The model config dict under `melhubert` (pretraining code) or `hubert` (older compression code)."""
    for key in ("melhubert", "hubert"):
        if key in upstream_config:
            return dict(upstream_config[key])
    raise CompressLibError(f"Upstream_Config holds neither 'melhubert' nor 'hubert' (keys: {sorted(upstream_config)})")


def _merge_pruning(state: dict) -> tuple[dict, dict]:
    """Fold torch.nn.utils.prune's `X_orig` / `X_mask` pairs into `X` (= X_orig * X_mask); return (state, masks)."""
    merged, masks = {}, {}
    for key, value in state.items():
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            name = key[: -len("_orig")]
            mask = state[name + "_mask"]
            merged[name] = value * mask
            masks[name] = mask.bool()
        else:
            merged[key] = value
    return merged, masks


def _rename(key: str) -> str:
    if key in RENAMES:
        return RENAMES[key]
    if key.startswith("encoder.layers."):
        return key[len("encoder."):]
    return key


def convert_state_dict(state: dict) -> tuple[dict, dict]:
    """Public state dict -> (compress_lib state dict, masks of weight pruning keyed by compress_lib names)."""
    state, masks = _merge_pruning(dict(state))
    return ({_rename(k): v for k, v in state.items()}, {_rename(k): v for k, v in masks.items()})


def config_from_public(cfg: dict, state: dict) -> MelHuBERTConfig:
    """A MelHuBERTConfig from the public config, with per-layer sizes read from the (converted) weight shapes."""
    for key, value in SUPPORTED.items():
        if key in cfg and cfg[key] != value:
            raise CompressLibError(f"the checkpoint uses {key}={cfg[key]!r}; compress_lib supports only {value!r}")
    feat_dim = int(cfg.get("feat_emb_dim", 40))
    frame_ms = {40: 10, 80: 20}.get(feat_dim)
    if frame_ms is None:
        raise CompressLibError(f"feat_emb_dim {feat_dim} is neither 40 (10 ms) nor 80 (20 ms stacked log-Mel)")
    if "pre_extract_proj.weight" not in state:
        raise CompressLibError("the checkpoint has no input projection (pre_extract_proj); not supported")
    embed_dim = int(cfg.get("encoder_embed_dim", 768))
    head_dim = embed_dim // int(cfg.get("encoder_attention_heads", 12))
    layer_ids = sorted({int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k))})
    if layer_ids != list(range(len(layer_ids))):
        raise CompressLibError(f"the checkpoint's layers are not numbered 0..L-1 (found {layer_ids})")
    mask_length = int(cfg.get("mask_length", 10 if frame_ms == 10 else 5))
    return MelHuBERTConfig(
        frame_ms=frame_ms,
        embed_dim=embed_dim,
        head_dim=head_dim,
        layer_heads=[state[f"layers.{i}.self_attn.q_proj.weight"].shape[0] // head_dim for i in layer_ids],
        layer_ffn_dims=[state[f"layers.{i}.fc1.weight"].shape[0] for i in layer_ids],
        conv_pos=int(cfg.get("conv_pos", 128)),
        conv_pos_groups=int(cfg.get("conv_pos_groups", 16)),
        num_clusters=state["final_proj.weight"].shape[0] if "final_proj.weight" in state else int(cfg.get("num_cluster", 512)),
        dropout=float(cfg.get("dropout", 0.1)),
        attention_dropout=float(cfg.get("attention_dropout", 0.1)),
        activation_dropout=float(cfg.get("activation_dropout", 0.1)),
        mask_prob=float(cfg.get("mask_prob", 0.7)) / mask_length,  # public mask_prob = start probability x span
        mask_length=mask_length,
    )


def read_public_checkpoint(path, trust: bool = False) -> tuple[MelHuBERT, dict | None, dict]:
    """Convert a public checkpoint: returns (model in eval mode, weight-pruning masks or None, meta)."""
    obj = load_public_dict(path, trust)
    state, masks = convert_state_dict(obj["model"])
    cfg = config_from_public(public_config(obj["Upstream_Config"]), state)
    model = MelHuBERT(cfg)
    if "final_proj.weight" not in state:  # a checkpoint without the cluster head: keep the fresh one
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("final_proj.")})
    _check_shapes(path, state, model.state_dict())
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CompressLibError(
            f"{path}: the weights do not match a MelHuBERT (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    model.eval()
    meta = dict(
        imported_from=str(Path(path).resolve()),
        source_step=int(obj["Step"]) if isinstance(obj.get("Step"), (int, float)) else None,
        frame_ms=cfg.frame_ms,
        pruned_heads="Pruned_heads" in obj,
        weight_pruned=bool(masks),
    )
    return model, (masks or None), meta


def _check_shapes(path, state: dict, expected: dict) -> None:
    """Name the first tensor whose shape differs from the MelHuBERT its config describes (a damaged file)."""
    for key, value in state.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            raise CompressLibError(
                f"{path}: tensor {key} has shape {tuple(value.shape)} but the checkpoint's own config and other "
                f"weights call for {tuple(expected[key].shape)}; the file is damaged or edited: re-download it"
            )


def import_public_checkpoint(path, trust: bool = False) -> MelHuBERT:
    """A MelHuBERT holding the weights of a public MelHuBERT checkpoint (same hidden states as the public code)."""
    return read_public_checkpoint(path, trust)[0]
