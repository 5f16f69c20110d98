"""The models as deployed on CPU: exported to ONNX, run by ONNX Runtime (ORT), optionally with int8 weights.

    export_onnx(model, path, num_layers=None, padding_mask=False) -> Path   fp32 ONNX, dynamic batch and time
    quantize_int8(onnx_path, int8_path) -> Path        ORT dynamic quantization: int8 weights of every MatMul
    ort_session(path, threads=1) -> InferenceSession    CPU, `threads` intra-op threads, no spinning
    OrtEncoder(path, like=model, threads=1)             an ORT session called like the PyTorch model
    int8_encoder(model, path, num_layers=None)          the int8 OrtEncoder of a model, cached at `path`
    deployed_models(model, folder, num_layers=None, runtimes=RUNTIMES) -> {runtime: callable encoder}
    max_abs_difference(model, encoder, seconds=1.0) -> float   hidden states of the two, compared
    model_bytes(model, num_layers=None) -> int          bytes of the inference path's parameters in memory
    runtime_real_time_factors(models, folder, runtimes=RUNTIMES, ...) -> [dict]  eager and ORT in turns

Why this path: PyTorch's own int8 (`torch.ao.quantization.quantize_dynamic`) runs fast but torch 2.13 warns
that its quantized tensors are deprecated; ONNX Runtime's dynamic quantization is maintained, is what a CPU
deployment of an exported model uses, and quantizes the same thing (the linear layers' weights to int8 with
one scale per tensor, activations quantized on the fly per batch). The export uses PyTorch's current exporter
(`torch.onnx.export(dynamo=True)`), not the deprecated TorchScript one.

What changes and what does not: int8 stores each linear weight in 1 byte instead of 4 (biases, layer norms and
the positional convolution stay float32), so `model_bytes` shrinks; the multiply-accumulates are the same ones,
in int8, so the MAC count does not change. A weight-pruned model exports its masked weights as the zeros they
are: ORT runs them like any other weight (masked, not removed).

Hidden states of ORT fp32 equal PyTorch's within `ORT_TOLERANCE` (tests check the smoke, study and paper-size
models); int8 changes them by design, and its cost is measured downstream (PR / SID of the int8 model).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from compress_lib.efficiency.params import component_of, layer_index
from compress_lib.efficiency.inputs import check_seconds_batch, example_inputs, model_device, num_layers_used
from compress_lib.efficiency.runtime import (
    check_model_input_memory,
    evaluating_on,
    paired_ratio,
    summarise,
    time_interleaved,
)
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.files import atomic_path
from compress_lib.threads import num_threads
from compress_lib.model import MelHuBERT, MelHuBERTOutput

INT8_RUNTIME = "onnxruntime-int8"
RUNTIMES = ("eager", "onnxruntime", INT8_RUNTIME)
ORT_TOLERANCE = 1e-4  # max |ORT fp32 - PyTorch| over the hidden states, relative to max(1, max |hidden state|)
OPSET = 18
EXPORT_SECONDS = 1.0  # length of the example input the exporter traces (the time axis stays dynamic)


class HiddenStatesModule(torch.nn.Module):
    """`model` as a graph from inputs to the tuple of its hidden states (projected input + each layer run).

    MelHuBERT runs without its cluster head and through `num_layers` layers; the zoo models return their list.
    """

    def __init__(self, model: torch.nn.Module, num_layers: int | None = None, padding_mask: bool = False):
        super().__init__()
        self.model, self.num_layers, self.with_padding_mask = model, num_layers, padding_mask
        self.input_name = "feats" if isinstance(model, MelHuBERT) else "wave"

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if isinstance(self.model, MelHuBERT):
            out = self.model(x, padding_mask=padding_mask, num_layers=self.num_layers, compute_logits=False)
            return tuple(out.hidden_states)  # k + 1 tensors (B, T, D)
        return tuple(self.model(x, padding_mask=padding_mask, num_layers=self.num_layers))


def export_onnx(model: torch.nn.Module, path, num_layers: int | None = None, padding_mask: bool = False) -> Path:
    """Write `model` (eval mode, CPU) as one fp32 ONNX file (weights inside), batch and time axes dynamic.

    Inputs: `feats` (B, T, F) for MelHuBERT, `wave` (B, S) for the zoo, plus `padding_mask` (B, T or S; bool,
    True at padding) when asked; outputs `hidden_0` .. `hidden_k`, each (B, T, D).
    """
    num_layers_used(model, num_layers)  # a clear error for an out-of-range depth, before the exporter's
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = HiddenStatesModule(model, num_layers, padding_mask)
    with evaluating_on(model, "cpu"):
        module.eval()
        x = example_inputs(model, EXPORT_SECONDS, batch=2, device="cpu")[module.input_name]
        args = (x,)
        batch, time_ = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("time", min=2, max=10**7)
        shapes, names = ({0: batch, 1: time_},), [module.input_name]
        if padding_mask:
            mask = torch.zeros(x.shape[:2], dtype=torch.bool)
            mask[1, x.shape[1] // 2:] = True  # a padded second utterance: the traced graph keeps the mask path
            args, names = (x, mask), [module.input_name, "padding_mask"]
            shapes = ({0: batch, 1: time_}, {0: batch, 1: time_})
        outputs = [f"hidden_{i}" for i in range(num_layers_used(model, num_layers) + 1)]
        with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter about its own internals
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            program = torch.onnx.export(module, args, dynamic_shapes=shapes, input_names=names, output_names=outputs,
                                        dynamo=True, opset_version=OPSET, optimize=True, verbose=False)
            program.save(str(tmp), external_data=False)
    return path


def quantize_int8(onnx_path, int8_path) -> Path:
    """ONNX Runtime's dynamic quantization of an fp32 ONNX file: every MatMul weight to int8 (symmetric, one
    scale per tensor); activations are quantized on the fly. Written atomically."""
    # onnxruntime.quantization imports onnx and its helpers (about 1 s): imported only when quantizing
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = Path(int8_path)
    quant_logger = logging.getLogger()
    level = quant_logger.level
    quant_logger.setLevel(logging.ERROR)  # its advice to pre-process applies to calibrated (static) quantization
    try:
        with atomic_path(int8_path) as tmp:
            quantize_dynamic(str(onnx_path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    finally:
        quant_logger.setLevel(level)
    return int8_path


def ort_session(path, threads: int = 1) -> onnxruntime.InferenceSession:
    """An ORT CPU session with `threads` intra-op threads, one inter-op thread and no spinning threads (a
    spinning pool would take CPU from whatever runs next, e.g. the eager forward timed in turns with it)."""
    if int(threads) < 1:
        raise CompressLibError(f"threads must be >= 1, got {threads}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    path = Path(path)
    if not path.is_file():
        raise CompressLibError(f"ONNX model {path} does not exist; export it first (compress_lib.efficiency.deploy)")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtEncoder:
    """An ONNX Runtime session called like the PyTorch model it was exported from.

    `encoder(feats, padding_mask=None)` returns a MelHuBERTOutput (hidden states as tensors, no logits) for a
    MelHuBERT, a list of hidden states for a zoo model. The number of layers is fixed at export: a
    `num_layers` argument must be that number (or None). `cfg` is the model's config, so the downstream code
    treats the encoder like the model.
    """

    def __init__(self, path, like: torch.nn.Module, num_layers: int | None = None, threads: int = 1,
                 padding_mask: bool = False, runtime: str = "onnxruntime"):
        self.path, self.cfg, self.runtime = Path(path), like.cfg, runtime
        self.is_melhubert = isinstance(like, MelHuBERT)
        self.num_layers = num_layers_used(like, num_layers)
        self.session = ort_session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        if padding_mask != ("padding_mask" in self.input_names):
            raise CompressLibError(f"{self.path} was exported {'without' if padding_mask else 'with'} a padding mask")

    def run(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> list[np.ndarray]:
        feed = {self.input_names[0]: x.detach().float().cpu().numpy()}
        if "padding_mask" in self.input_names:
            mask = padding_mask if padding_mask is not None else torch.zeros(x.shape[:2], dtype=torch.bool)
            feed["padding_mask"] = mask.cpu().numpy()
        elif padding_mask is not None and bool(padding_mask.any()):
            raise CompressLibError(f"{self.path} was exported without a padding mask: export it with "
                                   "padding_mask=True to run padded batches")
        return self.session.run(None, feed)

    def __call__(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, frame_mask=None,
                 num_layers: int | None = None, compute_logits: bool = False):
        if frame_mask is not None or compute_logits:
            raise CompressLibError("an ONNX Runtime encoder computes hidden states only (no frame mask, no logits)")
        if num_layers is not None and num_layers != self.num_layers:
            raise CompressLibError(f"{self.path} runs {self.num_layers} layers (fixed at export), not {num_layers}")
        hidden = [torch.from_numpy(h) for h in self.run(x, padding_mask)]
        return MelHuBERTOutput(hidden_states=hidden, logits=None) if self.is_melhubert else hidden

    def eval(self):  # called like a module by code that puts upstreams in eval mode
        return self


def deployed_models(model: torch.nn.Module, folder, num_layers: int | None = None, runtimes=RUNTIMES,
                    threads: int = 1, name: str = "model", padding_mask: bool = False) -> dict:
    """{runtime: encoder} for each of `runtimes`: the PyTorch model itself for "eager", an `OrtEncoder` of its
    fp32 export (`folder/<name>.onnx`) for "onnxruntime" and of that file's int8 quantization
    (`folder/<name>.int8.onnx`) for "onnxruntime-int8"."""
    for runtime in runtimes:
        check_choice(runtime, RUNTIMES, "runtime")
    folder = Path(folder)
    out = {}
    fp32 = folder / f"{name}.onnx"
    if any(r.startswith("onnxruntime") for r in runtimes):
        export_onnx(model, fp32, num_layers, padding_mask)
    for runtime in runtimes:
        if runtime == "eager":
            out[runtime] = model
        elif runtime == "onnxruntime":
            out[runtime] = OrtEncoder(fp32, model, num_layers, threads, padding_mask, runtime)
        else:
            int8 = quantize_int8(fp32, folder / f"{name}.int8.onnx")
            out[runtime] = OrtEncoder(int8, model, num_layers, threads, padding_mask, runtime)
    return out


def int8_encoder(model: torch.nn.Module, path, num_layers: int | None = None, threads: int = 1,
                 padding_mask: bool = False) -> OrtEncoder:
    """An `OrtEncoder` of `model`'s int8 quantization at `path`, made there first unless a file is already there
    (the caller keys `path` by the model's content: a cache). The fp32 export in between is removed."""
    path = Path(path)
    if not path.is_file():
        fp32 = path.with_name(f".{path.stem}.{os.getpid()}.fp32.onnx")
        try:
            quantize_int8(export_onnx(model, fp32, num_layers, padding_mask), path)
        finally:
            fp32.unlink(missing_ok=True)
    return OrtEncoder(path, model, num_layers, threads, padding_mask, INT8_RUNTIME)


def file_bytes(encoder) -> int | None:
    """Bytes on disk of an `OrtEncoder`'s ONNX file (None for a PyTorch model)."""
    return encoder.path.stat().st_size if isinstance(encoder, OrtEncoder) else None


def model_bytes(model: torch.nn.Module, num_layers: int | None = None) -> int:
    """Bytes the inference path's parameters take in memory (element size x count; masked weights are stored
    as zeros and count; the cluster head, the zoo's published extras and layers past `num_layers` do not)."""
    keep = num_layers_used(model, num_layers)
    total = 0
    for name, p in model.named_parameters():
        index = layer_index(name)
        if component_of(name) == "heads" or (index is not None and index >= keep):
            continue
        total += p.numel() * p.element_size()
    return total


def max_abs_difference(model: torch.nn.Module, encoder: OrtEncoder, seconds: float = 1.0, batch: int = 1,
                       seed: int = 1) -> float:
    """Largest |encoder - model| over every hidden state, for random inputs of `seconds` (another length than
    the export's, so the dynamic time axis is exercised), relative to max(1, max |hidden state|)."""
    inputs = example_inputs(model, seconds, batch, encoder.num_layers, "cpu", seed=seed)
    x = inputs.pop("feats" if encoder.is_melhubert else "wave")
    with evaluating_on(model, "cpu"), torch.inference_mode():
        reference = HiddenStatesModule(model, encoder.num_layers)(x)
    got = encoder.run(x)
    if len(got) != len(reference):
        raise CompressLibError(f"{encoder.path} gives {len(got)} hidden states, the model {len(reference)}")
    scale = max(1.0, max(float(r.abs().max()) for r in reference))
    return max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, reference)) / scale


def runtime_real_time_factors(models, folder, runtimes=RUNTIMES, seconds: float = 10.0, batch: int = 1,
                              repeats: int = 10, warmup: int = 2, threads: int = 1) -> list[dict]:
    """Real-time factors of every (model, num_layers) pair of `models` in every runtime, all timed in turns.

    Each model is exported to `folder/model-<i>.onnx` (and its int8 quantization); then one forward of each
    (model, runtime) per round, `repeats` rounds after `warmup`, with the same random input and `threads`
    threads in every runtime (`compress_lib.efficiency.runtime.time_interleaved`). Returns one dict per model and
    runtime, model-major: {"index", "runtime", "median", "spread", "quartiles", "times_s", "ratio_to_eager"
    (median over rounds of this runtime's time / eager's, or None without an eager run), "file_bytes",
    "max_abs_difference" (fp32 ORT only, against eager), "threads", "seconds", "batch", "repeats", "warmup"}.
    """
    check_seconds_batch(seconds, batch)
    if int(threads) < 1:
        raise CompressLibError(f"threads must be >= 1, got {threads}")
    entries, calls = [], []  # deployed_models checks the runtimes before its first export
    for index, (model, num_layers) in enumerate(models):
        if model_device(model).type != "cpu":
            raise CompressLibError("ONNX Runtime is timed on the CPU: move the model to the CPU first")
        check_model_input_memory(model, seconds, batch, "cpu")
        encoders = deployed_models(model, folder, num_layers, runtimes, threads, name=f"model-{index}")
        inputs = example_inputs(model, seconds, batch, num_layers, "cpu")
        x = inputs["feats" if isinstance(model, MelHuBERT) else "wave"]
        for runtime, encoder in encoders.items():
            if runtime == "eager":
                call = lambda model=model, inputs=inputs: model(**inputs)  # noqa: E731
            else:
                call = lambda encoder=encoder, x=x: encoder.run(x)  # noqa: E731
            entries.append((index, runtime, encoder))
            calls.append(call)
    with num_threads(threads) as used, contextlib.ExitStack() as restore:
        for model, _ in models:
            restore.enter_context(evaluating_on(model, "cpu"))
        times = time_interleaved(calls, "cpu", warmup, repeats)
    eager_times = {index: t for (index, runtime, _), t in zip(entries, times) if runtime == "eager"}
    rows = []
    for (index, runtime, encoder), t in zip(entries, times):
        model, num_layers = models[index]
        eager = eager_times.get(index)
        rows.append({
            "index": index, "runtime": runtime, **summarise(t, seconds * batch), "times_s": t,
            "ratio_to_eager": paired_ratio(eager, t) if eager is not None else None,
            "file_bytes": file_bytes(encoder),
            "max_abs_difference": (max_abs_difference(model, encoder) if runtime == "onnxruntime" else None),
            "threads": used, "seconds": seconds, "batch": batch, "repeats": repeats, "warmup": warmup,
        })
    return rows
