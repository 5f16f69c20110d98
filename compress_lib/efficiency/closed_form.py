"""Closed-form parameter and MAC counts of every architecture the project profiles.

These are the references the measured counts (`params.py`, `macs.py`) are tested against. They count exactly
what `macs.COUNTING_CONVENTION` states:

    Linear(in -> out) on N rows            N * in * out  + N * out (bias adds)
    Conv1d(C_in -> C_out, k, groups g)     B * T_out * C_out * (C_in / g) * k  + B * T_out * C_out (bias)
    attention of one layer, H heads        QK^T: B * H * T * T * hd,  AV: B * H * T * T * hd
    attention-map reuse (ARMHuBERT)        AV only
    weight-pruned (masked) linear          N * (non-zero weights) + N * (non-zero biases)

Norms, activations, softmax, residual additions and the weight-norm reparametrisation are not counted. The
positional convolution is counted on the T + 1 frames it computes with its even kernel (the last one is then
dropped). A layer with zero heads runs no attention at all (it adds only the out-projection bias, not counted);
a layer with zero FFN units still adds fc2's bias (N * D, counted as the counter sees it).
"""

from __future__ import annotations

import math

from compress_lib.config import MelHuBERTConfig, SAMPLE_RATE
from compress_lib.zoo import WavEncoderConfig


# -- building blocks -------------------------------------------------------------------------------------------
def _nonzero(masks, name: str, numel: int) -> int:
    if masks is None or name not in masks:
        return numel
    return int(masks[name].sum())


def linear_macs(rows: int, in_features: int, out_features: int, name: str = "", masks=None, bias: bool = True) -> int:
    """MACs of a Linear layer on `rows` rows; with masks, only the non-zero weights / biases of `name` count."""
    weights = _nonzero(masks, f"{name}.weight", in_features * out_features)
    biases = _nonzero(masks, f"{name}.bias", out_features) if bias else 0
    return rows * (weights + biases)


def conv1d_out_len(t: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (t + 2 * padding - kernel) // stride + 1


def conv1d_macs(batch: int, t_out: int, c_in: int, c_out: int, kernel: int, groups: int = 1, bias: bool = True) -> int:
    return batch * t_out * c_out * (c_in // groups * kernel + (1 if bias else 0))


def attention_macs(batch: int, heads: int, head_dim: int, frames: int, computes_map: bool = True) -> int:
    """QK^T and AV of one layer (AV only when the layer reuses an attention map)."""
    products = 2 if computes_map else 1
    return products * batch * heads * frames * frames * head_dim


def _pos_conv_macs(batch: int, frames: int, dim: int, kernel: int, groups: int) -> int:
    t_out = conv1d_out_len(frames, kernel, padding=kernel // 2)  # T + 1 for an even kernel
    return conv1d_macs(batch, t_out, dim, dim, kernel, groups)


def _pos_conv_params(dim: int, kernel: int, groups: int) -> int:
    return dim * (dim // groups) * kernel + dim + kernel  # weight_v, bias, weight_g (1, 1, kernel)


def _layer_macs(prefix, rows, batch, frames, dim, heads, head_dim, ffn, masks, computes_map=True) -> int:
    macs = 0
    if heads > 0:  # a layer with every head pruned skips attention entirely
        inner = heads * head_dim
        projections = ("q_proj", "k_proj", "v_proj") if computes_map else ("v_proj",)
        for proj in projections:
            macs += linear_macs(rows, dim, inner, f"{prefix}.self_attn.{proj}", masks)
        macs += attention_macs(batch, heads, head_dim, frames, computes_map)
        macs += linear_macs(rows, inner, dim, f"{prefix}.self_attn.out_proj", masks)
    macs += linear_macs(rows, dim, ffn, f"{prefix}.fc1", masks)
    macs += linear_macs(rows, ffn, dim, f"{prefix}.fc2", masks)
    return macs


def _layer_params(dim, heads, head_dim, ffn, computes_map=True) -> int:
    inner = heads * head_dim
    projections = 3 if computes_map else 1  # q, k, v (a reusing layer keeps only v)
    attention = projections * (dim * inner + inner) + inner * dim + dim
    return attention + 2 * dim * ffn + ffn + dim + 4 * dim  # + two LayerNorms


# -- MelHuBERT -------------------------------------------------------------------------------------------------
def melhubert_num_params(cfg: MelHuBERTConfig, include_head: bool = False, num_layers: int | None = None) -> int:
    """Parameters of a MelHuBERT (the first `num_layers` layers), without the cluster head unless asked."""
    D = cfg.embed_dim
    L = cfg.num_layers if num_layers is None else num_layers
    n = cfg.feat_dim * D + D + _pos_conv_params(D, cfg.conv_pos, cfg.conv_pos_groups) + 2 * D
    for h, f in list(zip(cfg.layer_heads, cfg.layer_ffn_dims))[:L]:
        n += _layer_params(D, h, cfg.head_dim, f)
    if include_head:
        n += D * cfg.num_clusters + cfg.num_clusters
    return n


def melhubert_macs(cfg: MelHuBERTConfig, frames: int, batch: int = 1, num_layers: int | None = None, masks=None) -> int:
    """MACs of one MelHuBERT forward on (batch, frames) input frames, without the cluster head."""
    D, rows = cfg.embed_dim, batch * frames
    L = cfg.num_layers if num_layers is None else num_layers
    macs = linear_macs(rows, cfg.feat_dim, D, "pre_extract_proj", masks)
    macs += _pos_conv_macs(batch, frames, D, cfg.conv_pos, cfg.conv_pos_groups)
    for i, (h, f) in enumerate(list(zip(cfg.layer_heads, cfg.layer_ffn_dims))[:L]):
        macs += _layer_macs(f"layers.{i}", rows, batch, frames, D, h, cfg.head_dim, f, masks)
    return macs


# -- the zoo's waveform encoders -------------------------------------------------------------------------------
def cnn_macs(cfg: WavEncoderConfig, batch: int, samples: int) -> tuple[int, int]:
    """(MACs, output frames) of the wav CNN front-end on (batch, samples)."""
    macs, t, c_in = 0, samples, 1
    for c, k, s in cfg.conv_layers:
        t = conv1d_out_len(t, k, s)
        macs += conv1d_macs(batch, t, c_in, c, k, bias=cfg.conv_bias)
        c_in = c
    return macs, t


def _cnn_params(cfg: WavEncoderConfig) -> int:
    params, c_in = 0, 1
    for i, (c, k, _) in enumerate(cfg.conv_layers):
        params += c_in * c * k + (c if cfg.conv_bias else 0)
        if cfg.extractor_mode == "layer_norm" or i == 0:
            params += 2 * c  # GroupNorm (first block only) or LayerNorm (every block)
        c_in = c
    return params


def _extras_params(cfg: WavEncoderConfig) -> int:
    return sum(math.prod(shape) for shape in cfg.published_extras.values())


def wav_encoder_num_params(cfg: WavEncoderConfig, include_extras: bool = False, num_layers: int | None = None) -> int:
    """Parameters of a zoo model; `include_extras` adds what the published count includes (heads, ...)."""
    D, C = cfg.embed_dim, cfg.feature_channels
    L = cfg.num_layers if num_layers is None else num_layers
    n = _cnn_params(cfg) + 2 * C  # + the LayerNorm over the CNN's channels
    n += (C * D + D) if C != D else 0
    n += _pos_conv_params(D, cfg.conv_pos, cfg.conv_pos_groups) + 2 * D
    if cfg.time_reduction:
        n += D * D * cfg.time_reduction + D
    pattern = cfg.reuse_pattern or [True] * cfg.num_layers
    n += sum(_layer_params(D, cfg.num_heads, cfg.head_dim, cfg.ffn_dim, computes) for computes in pattern[:L])
    return n + (_extras_params(cfg) if include_extras else 0)


def wav_encoder_macs(
    cfg: WavEncoderConfig, samples: int, batch: int = 1, num_layers: int | None = None, masks=None
) -> int:
    """MACs of one zoo-model forward on (batch, samples) waveform samples."""
    D, C = cfg.embed_dim, cfg.feature_channels
    L = cfg.num_layers if num_layers is None else num_layers
    macs, frames = cnn_macs(cfg, batch, samples)
    if C != D:
        macs += linear_macs(batch * frames, C, D, "post_extract_proj", masks)
    macs += _pos_conv_macs(batch, frames, D, cfg.conv_pos, cfg.conv_pos_groups)
    if cfg.time_reduction:
        r = cfg.time_reduction
        frames = conv1d_out_len(frames, r, r)
        macs += conv1d_macs(batch, frames, D, D, r)
    pattern = cfg.reuse_pattern or [True] * cfg.num_layers
    for i, computes in enumerate(pattern[:L]):
        macs += _layer_macs(
            f"layers.{i}", batch * frames, batch, frames, D, cfg.num_heads, cfg.head_dim, cfg.ffn_dim, masks, computes
        )
    return macs


# -- one entry point per quantity ------------------------------------------------------------------------------
def closed_form_num_params(model_or_cfg, include_heads: bool = False, num_layers: int | None = None) -> int:
    """Closed-form parameter count of a MelHuBERT / zoo model (or its config)."""
    cfg = getattr(model_or_cfg, "cfg", model_or_cfg)
    if isinstance(cfg, MelHuBERTConfig):
        return melhubert_num_params(cfg, include_heads, num_layers)
    if isinstance(cfg, WavEncoderConfig):
        return wav_encoder_num_params(cfg, include_heads, num_layers)
    raise TypeError(f"no closed form for {type(cfg).__name__}")


def closed_form_macs(model_or_cfg, seconds: float = 1.0, batch: int = 1, num_layers=None, masks=None) -> int:
    """Closed-form MACs of one forward on `batch` inputs of `seconds` of speech."""
    cfg = getattr(model_or_cfg, "cfg", model_or_cfg)
    if isinstance(cfg, MelHuBERTConfig):
        return melhubert_macs(cfg, round(seconds * cfg.frames_per_second), batch, num_layers, masks)
    if isinstance(cfg, WavEncoderConfig):
        return wav_encoder_macs(cfg, round(seconds * SAMPLE_RATE), batch, num_layers, masks)
    raise TypeError(f"no closed form for {type(cfg).__name__}")


def closed_form_macs_per_second(model_or_cfg, masks=None, num_layers=None, seconds: float = 1.0) -> int:
    """MACs per second of speech in closed form: MACs of a `seconds`-long input (batch 1) divided by `seconds`."""
    return round(closed_form_macs(model_or_cfg, seconds, 1, num_layers, masks) / seconds)
