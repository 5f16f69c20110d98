"""How to feed each kind of model `seconds` of speech: the one place that knows the models' input formats.

MelHuBERT reads log-Mel frames (100 per second at 10 ms, 50 stacked pairs at 20 ms) and is run without its
cluster head (`compute_logits=False`): efficiency is measured on the path that produces the hidden states.
The zoo models read 16 kHz waveforms. Inputs are random (seeded): costs do not depend on the values.
"""

from __future__ import annotations

import torch

from compress_lib.config import SAMPLE_RATE
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT
from compress_lib.zoo import WavEncoder


def check_seconds_batch(seconds: float, batch: int) -> None:
    if not seconds > 0:
        raise CompressLibError(f"seconds must be > 0, got {seconds}")
    if int(batch) != batch or batch < 1:
        raise CompressLibError(f"batch must be a positive integer, got {batch}")


def input_length(model, seconds: float) -> int:
    """Input frames (MelHuBERT) or samples (zoo) for `seconds` of speech."""
    if isinstance(model, MelHuBERT):
        return max(1, round(seconds * model.cfg.frames_per_second))
    if isinstance(model, WavEncoder):
        return round(seconds * SAMPLE_RATE)
    raise CompressLibError(
        f"cannot profile a {type(model).__name__}: pass a MelHuBERT, a zoo model or a compress_lib checkpoint"
    )


def model_device(model) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


def example_inputs(
    model, seconds: float = 1.0, batch: int = 1, num_layers: int | None = None, device=None, seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Keyword arguments for one forward of `model` on `batch` random inputs of `seconds` of speech, in `dtype`
    (the same values, drawn in float32, for any dtype)."""
    check_seconds_batch(seconds, batch)
    n = input_length(model, seconds)
    device = model_device(model) if device is None else torch.device(device)
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, MelHuBERT):
        feats = torch.randn(batch, n, model.cfg.feat_dim, generator=g)  # (B, T, F)
        return {"feats": feats.to(device, dtype), "num_layers": num_layers, "compute_logits": False}
    wave = 0.1 * torch.randn(batch, n, generator=g)  # (B, S)
    return {"wave": wave.to(device, dtype), "num_layers": num_layers}


def num_layers_used(model, num_layers: int | None) -> int:
    total = len(model.layers)
    if num_layers is None:
        return total
    if not 0 <= num_layers <= total:
        raise CompressLibError(f"num_layers must be in 0..{total}, got {num_layers}")
    return num_layers
