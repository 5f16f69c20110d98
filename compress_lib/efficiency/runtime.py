"""Real-time factor: forward wall time divided by the duration of the audio processed.

    RTF = median over `repeats` timed forwards of (wall time) / (batch x seconds)

after `warmup` untimed forwards, with the spread (min, max) and quartiles of the repeats. On CPU the wall time is
`time.perf_counter` around the forward and the thread count is recorded (and can be set); on CUDA the forward is
bracketed by CUDA events and synchronised. Forwards run in eval mode under `torch.inference_mode()` with the
default attention kernels (the fused SDPA kernel where PyTorch picks it): timings are of the model as deployed.

MelHuBERT reads log-Mel features, so its feature extraction (Kaldi fbank of the waveform, normalisation, frame
stacking at 20 ms) is timed separately (`feature_*` keys); the zoo models read the waveform directly (their CNN
front-end is part of the encoder time) and have no separate feature cost. Inputs are random (seeded).

Memory guard: self-attention holds a (batch x heads x T x T) float32 score matrix per layer, quadratic in the
input length T (frames). Before any forward, `check_attention_memory` estimates it and refuses, with one clear
error, inputs whose score matrix would exceed half the memory available (`MemAvailable` of /proc/meminfo on
CPU, free GPU memory on CUDA): an hour of speech at 20 ms is 180,000 frames, terabytes of scores.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from contextlib import ExitStack, contextmanager

import torch

from compress_lib.config import MEL_BINS, SAMPLE_RATE
from compress_lib.data.features import log_mel, stack_pairs
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.efficiency.inputs import check_seconds_batch, example_inputs, model_device
from compress_lib.model import MelHuBERT
from compress_lib.threads import num_threads

DEVICES = ("cpu", "cuda")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ATTENTION_MEMORY_FRACTION = 0.5  # the score matrix may take at most this share of the memory available
WAVEFORM_FRAMES_PER_SECOND = 50  # the zoo models' CNN front-end: one frame per 20 ms


def available_memory_bytes(device: str = "cpu") -> int | None:
    """Memory a new allocation can use now: free GPU memory on CUDA, MemAvailable on CPU; None if unknown."""
    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0]) if torch.cuda.is_available() else None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def attention_frames(model, seconds: float) -> int:
    """Frames the encoder's self-attention sees for `seconds` of speech."""
    if isinstance(model, MelHuBERT):
        return max(1, round(seconds * model.cfg.frames_per_second))
    return max(1, round(seconds * WAVEFORM_FRAMES_PER_SECOND))


def max_attention_heads(model) -> int:
    """The most attention heads any layer of `model` has (at least 1)."""
    return max([int(getattr(m, "num_heads", 0) or 0) for m in model.modules()] + [1])


def attention_score_bytes(frames: int, heads: int, batch: int = 1) -> int:
    """Bytes of one layer's float32 attention scores: batch x heads x frames^2 x 4."""
    return int(batch) * int(heads) * int(frames) ** 2 * 4


def check_attention_memory(frames: int, heads: int, batch: int = 1, device: str = "cpu",
                           what: str = "the input") -> None:
    """Refuse (CompressLibError) an input whose attention scores would not fit in the memory available."""
    need = attention_score_bytes(frames, heads, batch)
    available = available_memory_bytes(device)
    if available is None or need <= ATTENTION_MEMORY_FRACTION * available:
        return
    longest = int(math.sqrt(ATTENTION_MEMORY_FRACTION * available / (4 * batch * heads)))
    raise CompressLibError(
        f"{what} is too long for this machine: {frames:,} frames need {need / 2**30:,.1f} GiB of attention scores "
        f"per layer (batch {batch} x {heads} heads x frames^2 x 4 bytes), over the limit of "
        f"{ATTENTION_MEMORY_FRACTION:.0%} of the {available / 2**30:,.1f} GiB available ({device}): use at most "
        f"{longest:,} frames (shorter --seconds, a smaller --batch, or cut the audio)"
    )


def check_model_input_memory(model, seconds: float, batch: int = 1, device: str = "cpu") -> None:
    """`check_attention_memory` for `batch` inputs of `seconds` of speech through `model`."""
    check_attention_memory(attention_frames(model, seconds), max_attention_heads(model), batch, device,
                           what=f"{seconds:g} s x batch {batch}")


def log_mel_features(wave: torch.Tensor, frame_ms: int) -> torch.Tensor:
    """MelHuBERT's input features of a batch of 16 kHz waveforms, (B, S) -> (B, T, 40 or 80).

    The data pipeline's computation (`compress_lib.data.features`): Kaldi fbank per utterance, normalisation
    with (here placeholder) corpus statistics, frame pairs stacked at 20 ms.
    """
    mean, std = torch.zeros(MEL_BINS, device=wave.device), torch.ones(MEL_BINS, device=wave.device)
    feats = []
    for w in wave:  # Kaldi fbank works on one utterance at a time
        f = (log_mel(w) - mean) / std  # (T, 40)
        feats.append(stack_pairs(f) if frame_ms == 20 else f)
    return torch.stack(feats)


def check_device(device: str) -> str:
    check_choice(device, DEVICES, "device")
    if device == "cuda" and not torch.cuda.is_available():
        raise CompressLibError("CUDA is not available on this machine; use --device cpu")
    return device


def check_dtype(dtype: str, device: str) -> torch.dtype:
    """The torch dtype of `dtype` ("float32", "float16", "bfloat16"); half precision is timed on a GPU only
    (the study's CPU timings are float32, and CPUs without native half-precision units emulate it)."""
    check_choice(dtype, DTYPES, "dtype")
    if dtype != "float32" and device != "cuda":
        raise CompressLibError(f"{dtype} is timed on a GPU only: pass --device cuda (on a machine with CUDA), or "
                               "--dtype float32 on the CPU")
    return DTYPES[dtype]


def in_precision(model, dtype: str = "float32"):
    """`model` itself for float32; a half-precision copy otherwise (casting the model itself and back would
    round its weights)."""
    return model if dtype == "float32" else copy.deepcopy(model).to(DTYPES[dtype])


@contextmanager
def evaluating_on(model, device: str):
    """The model in eval mode on `device`; its mode and device are restored afterwards."""
    old_device, was_training = model_device(model), model.training
    model.to(device).eval()
    try:
        yield model
    finally:
        model.to(old_device).train(was_training)


def time_interleaved(fns, device: str = "cpu", warmup: int = 2, repeats: int = 5) -> list[list[float]]:
    """Wall-clock seconds of `repeats` calls of each function, called in turns (f1, f2, ..., f1, f2, ...).

    Taking turns exposes every function to the same machine load, so that ratios between them stay meaningful
    on a shared machine. `warmup` untimed rounds come first. On CUDA each call is bracketed by events and
    synchronised.
    """
    if repeats < 1 or warmup < 0:
        raise CompressLibError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    times = [[] for _ in fns]
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns:
                fn()
        for _ in range(repeats):
            for fn, t in zip(fns, times):
                t.append(_time_one(fn, device))
    return times


def _time_one(fn, device: str) -> float:
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_calls(fn, device: str = "cpu", warmup: int = 2, repeats: int = 5) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `fn()` after `warmup` untimed calls (CUDA: events + sync)."""
    return time_interleaved([fn], device, warmup, repeats)[0]


def paired_ratio(times_a: list[float], times_b: list[float]) -> float:
    """Median over the turns of time_b / time_a (from `time_interleaved`): how much longer B takes than A."""
    return statistics.median(b / a for a, b in zip(times_a, times_b))


def summarise(times: list[float], audio_seconds: float) -> dict:
    """Median, spread (min, max) and quartiles of `times` divided by the audio duration."""
    rtf = sorted(t / audio_seconds for t in times)
    q1, _, q3 = statistics.quantiles(rtf, n=4, method="inclusive") if len(rtf) > 1 else (rtf[0],) * 3
    return {"median": statistics.median(rtf), "spread": [rtf[0], rtf[-1]], "quartiles": [q1, q3]}


def interleaved_real_time_factors(
    models,
    seconds: float = 10.0,
    batch: int = 1,
    device: str = "cpu",
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    dtype: str = "float32",
) -> list[dict]:
    """Real-time factors of several models timed together, in turns: one forward of each, then the next round.

    `models` holds (model, num_layers) pairs (num_layers None: every layer). Timing one model after another puts
    minutes between their measurements, and a shared machine's speed drifts over minutes: on the study's 2-core
    machine the same 20 ms architecture measured 0.0067 to 0.0103 that way. Taking turns gives every model the
    same load, so the ratios between their real-time factors hold. Returns one dict per model, in order:
    {"median", "spread", "quartiles", "times_s", "threads", "device", "seconds", "batch", "repeats", "warmup"}.
    Features are not timed (see `real_time_factor` for MelHuBERT's log-Mel cost). `dtype` float16 or bfloat16
    (CUDA only) times half-precision copies of the models on half-precision inputs.
    """
    check_seconds_batch(seconds, batch)
    check_device(device)
    torch_dtype = check_dtype(dtype, device)
    for model, _ in models:
        check_model_input_memory(model, seconds, batch, device)
    with num_threads(threads) as used_threads, ExitStack() as restore:
        forwards = []
        for model, num_layers in models:
            model = in_precision(model, dtype)
            restore.enter_context(evaluating_on(model, device))
            inputs = example_inputs(model, seconds, batch, num_layers, device, dtype=torch_dtype)
            forwards.append(lambda model=model, inputs=inputs: model(**inputs))
        times = time_interleaved(forwards, device, warmup, repeats)
    return [{**summarise(t, seconds * batch), "times_s": t, "threads": used_threads, "device": device,
             "dtype": dtype, "seconds": seconds, "batch": batch, "repeats": repeats, "warmup": warmup} for t in times]


def real_time_factor(
    model,
    seconds: float = 10.0,
    batch: int = 1,
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    num_layers: int | None = None,
    threads: int | None = None,
    dtype: str = "float32",
) -> dict:
    """Real-time factor of `model` on `batch` random inputs of `seconds` of speech each (`dtype`: see
    `interleaved_real_time_factors`; the features are computed in float32).

    Returns {"median", "spread": [min, max], "quartiles": [q1, q3], "times_s", "feature_median",
    "feature_spread", "total_median" (features + encoder), "threads", "device", "dtype", "seconds", "batch",
    "repeats", "warmup"}; every RTF is wall time / (batch x seconds).
    """
    (encoder,) = interleaved_real_time_factors([(model, num_layers)], seconds, batch, device, repeats, warmup,
                                               threads, dtype)
    feature_times = [0.0] * repeats
    if isinstance(model, MelHuBERT):
        g = torch.Generator().manual_seed(1)
        wave = (0.1 * torch.randn(batch, round(seconds * SAMPLE_RATE), generator=g)).to(device)
        frame_ms = model.cfg.frame_ms
        with num_threads(threads):
            feature_times = time_calls(lambda: log_mel_features(wave, frame_ms), device, warmup, repeats)
    features = summarise(feature_times, seconds * batch)
    return {
        **encoder,
        "feature_median": features["median"],
        "feature_spread": features["spread"],
        "total_median": encoder["median"] + features["median"],
    }


def rtf_sweep(model, seconds_list=(1, 5, 10, 30), batches=(1,), **kwargs) -> list[dict]:
    """`real_time_factor` for every input length (1 s to 30 s by default) and batch size."""
    return [real_time_factor(model, seconds=s, batch=b, **kwargs) for b in batches for s in seconds_list]
