"""One call that profiles a model on every efficiency metric: `profile_model`."""

from __future__ import annotations

from compress_lib.efficiency.macs import macs_per_second
from compress_lib.efficiency.ops import operator_call_counts
from compress_lib.efficiency.params import count_parameters
from compress_lib.efficiency.runtime import check_model_input_memory, real_time_factor


def profile_model(
    model,
    masks: dict | None = None,
    num_layers: int | None = None,
    seconds: float = 10.0,
    batch: int = 1,
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    threads: int | None = None,
    dtype: str = "float32",
) -> dict:
    """Parameters, MACs per second, real-time factor and operator calls of `model` (optionally masked/truncated).

    Keys: params (inference path), nonzero_params (masks honoured), params_with_heads (every parameter held,
    the zoo's published convention), components, macs_per_second (ptflops, 1 s input), real_time_factor
    (median of `repeats` on `batch` x `seconds` of speech; features excluded), real_time_factor_spread,
    feature_real_time_factor (MelHuBERT's log-Mel extraction; 0 for waveform models), operator_calls (top-level
    aten operators on CPU / CUDA kernels on a GPU), cpu_operators, cuda_kernels, device, dtype (of the timed
    forward; float16 / bfloat16 on CUDA only), threads, seconds, batch.
    """
    check_model_input_memory(model, seconds, batch, device)  # before any work: refuse what cannot fit
    counts = count_parameters(model, masks, num_layers)
    rtf = real_time_factor(model, seconds, batch, device, repeats, warmup, num_layers, threads, dtype)
    calls = operator_call_counts(model, 1.0, 1, device, num_layers)
    return {
        "params": counts["params"],
        "nonzero_params": counts["nonzero"],
        "params_with_heads": counts["total"],
        "components": counts["components"],
        "macs_per_second": macs_per_second(model, masks, num_layers),
        "real_time_factor": rtf["median"],
        "real_time_factor_spread": rtf["spread"],
        "feature_real_time_factor": rtf["feature_median"],
        "operator_calls": calls["cuda_kernels"] if device == "cuda" else calls["cpu_operators"],
        "cpu_operators": calls["cpu_operators"],
        "cuda_kernels": calls["cuda_kernels"],
        "device": device,
        "dtype": dtype,
        "threads": rtf["threads"],
        "seconds": seconds,
        "batch": batch,
        "num_layers": num_layers,
    }
