"""Operator and kernel calls per forward, counted with torch.profiler.

The paper explains its GPU runtimes by the number of kernel calls: each call has a fixed launch overhead, so
fewer, larger calls (fewer layers) run faster than many small ones at equal MACs. We count, for one forward
(after one warm-up forward):

- `cpu_operators`: top-level aten operators, i.e. the operator calls the model's Python code makes (an
  `aten::linear` counts once, not with the `aten::addmm` etc. it dispatches to). Every one of them pays the
  dispatcher's per-call overhead, the CPU analogue of a kernel launch.
- `cpu_operators_all`: every aten operator the profiler records, nested ones included.
- `cuda_kernels`: CUDA kernels launched (only with device="cuda").
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import torch
from torch.profiler import ProfilerActivity, profile

from compress_lib.efficiency.inputs import example_inputs
from compress_lib.efficiency.runtime import check_device, evaluating_on


@contextmanager
def quiet_native_stderr():
    """Silence the profiler's native start/stop log lines (written by C++ straight to file descriptor 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def operator_call_counts(model, seconds: float = 1.0, batch: int = 1, device: str = "cpu", num_layers=None) -> dict:
    """{"cpu_operators", "cpu_operators_all", "cuda_kernels" (None on CPU)} for one forward."""
    check_device(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with evaluating_on(model, device), torch.inference_mode():
        inputs = example_inputs(model, seconds, batch, num_layers, device)
        model(**inputs)  # warm-up: one-time initialisation is not part of a forward
        with quiet_native_stderr(), profile(activities=activities) as prof:
            model(**inputs)
            if device == "cuda":
                torch.cuda.synchronize()
    events = prof.events()
    aten = [e for e in events if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    kernels = None
    if device == "cuda":
        kernels = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    return {"cpu_operators": len(top), "cpu_operators_all": len(aten), "cuda_kernels": kernels}


def operator_calls(model, seconds: float = 1.0, batch: int = 1, device: str = "cpu", num_layers=None) -> int:
    """Calls per forward: CUDA kernels on a GPU, top-level aten operators on CPU (see the module docstring)."""
    counts = operator_call_counts(model, seconds, batch, device, num_layers)
    return counts["cuda_kernels"] if device == "cuda" else counts["cpu_operators"]
