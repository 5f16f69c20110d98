"""`compress-lib profile MODEL`: parameters, MACs per second of speech, real-time factor, operator calls.

MODEL is a zoo name (`compress-lib profile --list`), `melhubert` (a randomly initialised MelHuBERT whose shape
the structure flags set; paper size by default), or the path of a compress_lib checkpoint (its masks are
honoured). Examples:

    compress-lib profile melhubert --frame-ms 10
    compress-lib profile melhubert --layers 6 --heads 6 --ffn 512 --json
    compress-lib profile work/compress/weight/density-0.30.pt --num-layers 6
    compress-lib profile armhubert --seconds 30 --batch 2
    compress-lib profile work/compress/heads/point.pt --runtime onnxruntime-int8 --threads 1
    compress-lib profile melhubert --device cuda --dtype bfloat16

`--runtime onnxruntime` (or `onnxruntime-int8`) also exports the model to ONNX (int8: ONNX Runtime's dynamic
quantization) and times it in ONNX Runtime on the CPU, in turns with the eager forward on the same input and
threads; the report adds its real-time factor, its ratio to eager, the ONNX file's bytes and (fp32) the largest
difference of its hidden states from PyTorch's.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from compress_lib.errors import CompressLibError

MELHUBERT = "melhubert"


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL", help="zoo name, 'melhubert', or a checkpoint path")
    parser.add_argument("--list", action="store_true", help="list the zoo models and exit")
    parser.add_argument("--frame-ms", type=int, choices=(10, 20), default=20, help="MelHuBERT frame rate (default 20)")
    parser.add_argument("--preset", default="paper", help="MelHuBERT size preset: smoke, lab, study, paper (default paper)")
    parser.add_argument("--layers", type=int, help="MelHuBERT: number of layers (default: the preset's)")
    parser.add_argument("--heads", type=int, help="MelHuBERT: attention heads per layer (default: the preset's)")
    parser.add_argument("--ffn", type=int, help="MelHuBERT: FFN units per layer (default: the preset's)")
    parser.add_argument("--num-layers", type=int, help="run only the first k layers (truncation baseline)")
    parser.add_argument("--seconds", type=float, default=10.0, help="input length in seconds for the RTF (default 10)")
    parser.add_argument("--batch", type=int, default=1, help="batch size for the RTF (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device for the RTF (default cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards; the RTF is their median (default 5)")
    parser.add_argument("--threads", type=int, help="CPU threads for the RTF (default: PyTorch's setting; "
                        "1 with --runtime onnxruntime*)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="precision of the timed forward; half precision needs --device cuda (default float32)")
    parser.add_argument("--runtime", choices=("eager", "onnxruntime", "onnxruntime-int8"), default="eager",
                        help="also time the model in ONNX Runtime, fp32 or int8 (CPU, float32; default eager only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def list_models() -> str:
    from compress_lib.zoo import DESCRIPTIONS, PUBLISHED_PARAMS

    lines = [
        f"{name:18s} {PUBLISHED_PARAMS[name] / 1e6:6.2f} M published  {desc}" for name, desc in DESCRIPTIONS.items()
    ]
    lines.append(f"{MELHUBERT:18s} {'':17s}  MelHuBERT (--frame-ms, --preset, --layers, --heads, --ffn)")
    return "\n".join(lines)


def _positive(value, flag):
    if value is not None and value < 1:
        raise CompressLibError(f"{flag} must be >= 1, got {value}")


def load_model(args):
    """(name, model, masks) for the MODEL argument."""
    from compress_lib.zoo import ZOO, build_zoo_model

    name = args.model
    if name in ZOO:
        return name, build_zoo_model(name), None
    if name == MELHUBERT:
        from compress_lib.config import MODEL_PRESETS, config_for_preset
        from compress_lib.model import MelHuBERT
        from compress_lib.presets import check_preset

        for flag in ("layers", "heads", "ffn"):
            _positive(getattr(args, flag), f"--{flag}")
        preset = MODEL_PRESETS[check_preset(args.preset)]
        sizes = {"head_dim": preset["embed_dim"] // preset["num_heads"]}  # fewer heads keep the head size
        for key, value in (("num_layers", args.layers), ("num_heads", args.heads), ("ffn_dim", args.ffn)):
            if value is not None:
                sizes[key] = value
        cfg = config_for_preset(args.preset, args.frame_ms, **sizes)
        return f"melhubert-{args.frame_ms}ms", MelHuBERT(cfg).eval(), None
    if Path(name).exists():
        from compress_lib.checkpoint import load_checkpoint
        from compress_lib.errors import check_input_file

        ckpt = load_checkpoint(check_input_file(name, "MODEL"))
        return name, ckpt.model, ckpt.masks
    raise CompressLibError(
        f"unknown model {name!r}: give a zoo name ({', '.join(ZOO)}), '{MELHUBERT}', or an existing checkpoint path"
    )


def format_report(name: str, report: dict) -> str:
    spread = report["real_time_factor_spread"]
    calls = "CUDA kernels" if report["device"] == "cuda" else "top-level aten operators"
    lines = [
        f"model              {name}",
        f"params             {report['params']:,}",
        f"nonzero_params     {report['nonzero_params']:,}",
        f"params_with_heads  {report['params_with_heads']:,}",
        f"macs_per_second    {report['macs_per_second']:,} ({report['macs_per_second'] / 1e9:.3f} G)",
        f"real_time_factor   {report['real_time_factor']:.5f} (min {spread[0]:.5f}, max {spread[1]:.5f}; "
        f"{report['seconds']:g} s x batch {report['batch']}, {report['device']}, {report['threads']} threads)",
        f"feature_rtf        {report['feature_real_time_factor']:.5f} (log-Mel extraction, not in the RTF above)",
        f"operator_calls     {report['operator_calls']:,} ({calls} per forward of 1 s)",
        f"model_bytes        {report['model_bytes']:,} (parameters in memory)",
    ]
    deployed = report.get("deployed")
    if deployed:
        difference = deployed["max_abs_difference"]
        lines += [
            f"runtime            {deployed['runtime']} (ONNX file {deployed['file_bytes']:,} bytes"
            + (f"; hidden states within {difference:.1e} of PyTorch's" if difference is not None else "") + ")",
            f"runtime_rtf        {deployed['real_time_factor']:.5f} ({deployed['ratio_to_eager']:.2f} x eager, "
            f"timed in turns with eager's {deployed['eager_real_time_factor']:.5f})",
        ]
    return "\n".join(lines)


def run(args) -> int:
    from compress_lib.efficiency import profile_model
    from compress_lib.efficiency.deploy import model_bytes, runtime_real_time_factors
    from compress_lib.efficiency.runtime import check_dtype

    if args.list:
        print(list_models())
        return 0
    if not args.model:
        raise CompressLibError("give a MODEL to profile (a zoo name, 'melhubert' or a checkpoint path), or --list")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise CompressLibError(f"--seconds must be > 0, got {args.seconds}")
    _positive(args.batch, "--batch")
    _positive(args.repeats, "--repeats")
    _positive(args.threads, "--threads")
    if args.num_layers is not None and args.num_layers < 0:
        raise CompressLibError(f"--num-layers must be >= 0, got {args.num_layers}")
    if args.runtime != "eager" and (args.device != "cpu" or args.dtype != "float32"):
        raise CompressLibError(f"--runtime {args.runtime} is timed on the CPU in float32: drop --device / --dtype")
    check_dtype(args.dtype, args.device)
    name, model, masks = load_model(args)
    warmup = min(2, args.repeats)
    report = profile_model(
        model, masks=masks, num_layers=args.num_layers, seconds=args.seconds, batch=args.batch, device=args.device,
        repeats=args.repeats, warmup=warmup, threads=args.threads, dtype=args.dtype,
    )
    report = {"model": name, **report, "model_bytes": model_bytes(model, args.num_layers)}
    if args.runtime != "eager":
        with tempfile.TemporaryDirectory(prefix="compress-lib-onnx-") as folder:
            eager, deployed = runtime_real_time_factors(
                [(model, args.num_layers)], folder, ("eager", args.runtime), args.seconds, args.batch, args.repeats,
                warmup, args.threads or 1)
        report["deployed"] = {"runtime": args.runtime, "real_time_factor": deployed["median"],
                              "eager_real_time_factor": eager["median"], "ratio_to_eager": deployed["ratio_to_eager"],
                              "file_bytes": deployed["file_bytes"], "max_abs_difference": deployed["max_abs_difference"],
                              "threads": deployed["threads"]}
    print(json.dumps(report) if args.json else format_report(name, report))
    return 0
