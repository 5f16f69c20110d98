"""Efficiency benchmark (not a test): every number below is measured in this one run, on this machine.

    .venv/bin/python benchmarks/efficiency.py [--threads 2] [--seconds 10] [--repeats 5] [--out results.json]

Sections:
1. Dense matmul throughput of this machine (2048 x 2048 fp32 matmul), the reference for everything else.
2. MelHuBERT forward throughput at paper size (10 ms and 20 ms, `--seconds` of speech, batch 1; and 20 ms at
   batch 4): ptflops MACs of that very forward / its wall time, as a ratio of the matmul throughput measured in
   the same rounds (target: at least 0.85).
3. Compressed MelHuBERT-20ms shapes (weight-pruned with dense kernels, head-pruned, FFN-pruned, truncated /
   distilled, combined): real-time-factor ratio to the dense model next to the MAC ratio.
4. Real-time factor of MelHuBERT-20ms across input lengths (1 s to 30 s).
5. Beyond the paper: a weight-pruned MelHuBERT-20ms with sparse CSR kernels against the dense forward, across
   densities; the density below which sparse execution wins.
6. The zoo table: params, MACs per second, CPU RTF and operator calls of every zoo model and MelHuBERT-10/20 ms.

Random weights throughout: costs do not depend on the values. Timings on a shared machine are noisy, so the
models of one table take turns (one forward of each per round, `time_interleaved`): every model sees the same
load, and a ratio is the median over the rounds of the per-round ratio. Medians and (min, max) spreads are
printed so that a reader can judge.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from compress_lib.config import config_for_preset  # noqa: E402
from compress_lib.efficiency import (  # noqa: E402
    count_macs,
    count_parameters,
    log_mel_features,
    macs_per_second,
    operator_calls,
)
from compress_lib.efficiency.inputs import example_inputs  # noqa: E402
from compress_lib.efficiency.runtime import (  # noqa: E402
    DTYPES,
    check_device,
    check_dtype,
    in_precision,
    paired_ratio,
    time_interleaved,
)
from compress_lib.errors import CompressLibError  # noqa: E402
from compress_lib.threads import num_threads  # noqa: E402
from compress_lib.efficiency.sparse import (  # noqa: E402
    apply_masks,
    crossover_density,
    magnitude_masks,
    sparse_vs_dense,
)
from compress_lib.model import MelHuBERT  # noqa: E402
from compress_lib.config import SAMPLE_RATE  # noqa: E402
from compress_lib.zoo import ZOO, build_zoo_model  # noqa: E402


def melhubert(frame_ms=20, seed=0, **sizes) -> MelHuBERT:
    torch.manual_seed(seed)
    return MelHuBERT(config_for_preset("paper", frame_ms, head_dim=64, **sizes)).eval()


def forward_of(model, seconds: float, num_layers=None, device: str = "cpu", dtype: str = "float32"):
    """A no-argument forward of `model` on `seconds` of random speech (batch 1), on `device` in `dtype` (a copy
    of the model in half precision)."""
    model = in_precision(model, dtype).to(device).eval()
    inputs = example_inputs(model, seconds, num_layers=num_layers, device=device, dtype=DTYPES[dtype])
    return lambda: model(**inputs)


def rtf_stats(times: list[float], seconds: float) -> dict:
    rtf = sorted(t / seconds for t in times)
    return {"rtf": statistics.median(rtf), "rtf_spread": [rtf[0], rtf[-1]]}


def section(title: str) -> None:
    print(f"\n## {title}", flush=True)


def throughput(args, results) -> None:
    section("1-2. Dense matmul throughput and MelHuBERT forward throughput (paper size, taking turns)")
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    models = {ms: melhubert(ms) for ms in (20, 10)}
    for frame_ms, batch in ((20, 1), (10, 1), (20, 4)):  # batch 4: four times the rows per matrix product
        model = models[frame_ms]
        inputs = example_inputs(model, args.seconds, batch)
        macs = count_macs(model, inputs)
        mm_t, fwd_t = time_interleaved([lambda: a @ b, lambda: model(**inputs)], "cpu", 2, args.repeats)
        r = {
            "batch": batch,
            "macs": macs,
            "matmul_gflops": 2 * n**3 / statistics.median(mm_t) / 1e9,
            "forward_s": statistics.median(fwd_t),
            "gflops": 2 * macs / statistics.median(fwd_t) / 1e9,
            # per round: (model FLOP/s) / (matmul FLOP/s) = (macs / n^3) x (matmul time / forward time)
            "ratio_to_matmul": macs / n**3 / paired_ratio(mm_t, fwd_t),
        }
        results[f"melhubert_{frame_ms}ms_batch{batch}_throughput"] = r
        print(
            f"MelHuBERT-{frame_ms}ms forward ({args.seconds:g} s x batch {batch}): {macs / 1e9:6.1f} GMAC in "
            f"{r['forward_s']:.3f} s = {r['gflops']:6.1f} GFLOP/s; dense 2048x2048 matmul "
            f"{r['matmul_gflops']:6.1f} GFLOP/s; ratio {r['ratio_to_matmul']:.2f} (target >= 0.85)"
        )


COMPRESSED = {  # name -> (structure of a MelHuBERT-20ms, weight-pruning density, truncation)
    "dense (12 x 768, 144 heads, FFN 3072)": ({}, None, None),
    "weight-pruned, density 0.30 (dense kernels)": ({}, 0.30, None),
    "weight-pruned, density 0.10 (dense kernels)": ({}, 0.10, None),
    "head-pruned to 72 heads (6 per layer)": ({"num_heads": 6}, None, None),
    "head-pruned to 36 heads (3 per layer)": ({"num_heads": 3}, None, None),
    "FFN-pruned to 1536": ({"ffn_dim": 1536}, None, None),
    "FFN-pruned to 512": ({"ffn_dim": 512}, None, None),
    "distilled, 6 layers": ({"num_layers": 6}, None, None),
    "distilled, 2 layers": ({"num_layers": 2}, None, None),
    "first 6 layers (truncated)": ({}, None, 6),
    "combined: 6 layers, 36 heads, FFN 512": ({"num_layers": 6, "num_heads": 6, "ffn_dim": 512}, None, None),
}


def compressed_ratios(args, results, dtype: str = "float32") -> None:
    section(f"3. Compressed MelHuBERT-20ms: RTF ratio vs MAC ratio ({args.seconds:g} s, batch 1, {args.device} "
            f"{dtype}, taking turns)")
    rows, calls = [], []
    for name, (sizes, density, truncate) in tqdm(COMPRESSED.items(), desc="building", file=sys.stderr):
        model = rows[0]["_model"] if truncate else melhubert(20, **sizes)  # truncation runs the dense model
        masks = magnitude_masks(model, density) if density else None
        if masks:
            apply_masks(model, masks)  # weight pruning stores masked weights as zeros; kernels stay dense
        rows.append({"model": name, "_model": model, "macs_per_second": macs_per_second(model, masks, truncate),
                     "params": count_parameters(model, masks, truncate)["nonzero"]})
        calls.append(forward_of(model, args.seconds, truncate, args.device, dtype))
    times = time_interleaved(calls, args.device, args.warmup, args.repeats)
    dense = rows[0]
    print(f"{'model':46s} {'nonzero params':>14s} {'GMAC/s':>7s} {'MAC ratio':>9s} {'RTF':>8s} {'RTF ratio':>9s}")
    for r, t in zip(rows, times):
        del r["_model"]
        r.update(rtf_stats(t, args.seconds))
        r["macs_ratio"] = r["macs_per_second"] / dense["macs_per_second"]
        r["rtf_ratio"] = paired_ratio(times[0], t)
        print(f"{r['model']:46s} {r['params'] / 1e6:13.2f}M {r['macs_per_second'] / 1e9:7.2f} {r['macs_ratio']:9.2f}"
              f" {r['rtf']:8.4f} {r['rtf_ratio']:9.2f}")
    results["compressed" + suffix(dtype)] = rows


def suffix(dtype: str) -> str:
    """The results key's suffix of a precision: none for float32 (the CPU run's keys stay as they were)."""
    return "" if dtype == "float32" else f"_{dtype}"


def length_sweep(args, results) -> None:
    section("4. MelHuBERT-20ms real-time factor across input lengths (batch 1, CPU, taking turns)")
    model = melhubert(20)
    lengths = (1, 5, 10, 30)
    wave = 0.1 * torch.randn(1, 10 * SAMPLE_RATE)
    calls = [forward_of(model, s) for s in lengths] + [lambda: log_mel_features(wave, 20)]
    *times, feature_times = time_interleaved(calls, "cpu", 1, args.repeats)
    rows = []
    for seconds, t in zip(lengths, times):
        rows.append({"seconds": seconds, **rtf_stats(t, seconds)})
        lo, hi = rows[-1]["rtf_spread"]
        print(f"{seconds:3d} s: RTF {rows[-1]['rtf']:.4f} (min {lo:.4f}, max {hi:.4f})")
    features = rtf_stats(feature_times, 10)
    print(f"log-Mel feature extraction (not in the RTFs above): RTF {features['rtf']:.4f} on 10 s")
    results["length_sweep"] = {"rows": rows, "feature_rtf_10s": features["rtf"]}


def sparse_experiment(args, results) -> None:
    section(f"5. Weight pruning with sparse CSR kernels vs dense kernels (MelHuBERT-20ms, {args.seconds:g} s)")
    rows = sparse_vs_dense(melhubert(20), densities=(0.5, 0.3, 0.2, 0.1, 0.05, 0.02), seconds=args.seconds,
                           repeats=args.repeats, warmup=1)
    print(f"{'density':>7s} {'MAC ratio':>9s} {'dense s':>8s} {'sparse s':>8s} {'speedup':>7s}")
    for r in rows:
        print(f"{r['density']:7.2f} {r['macs_ratio']:9.2f} {r['dense_s']:8.3f} {r['sparse_s']:8.3f} "
              f"{r['speedup']:7.2f}")
    cross = crossover_density(rows)
    print("sparse execution wins at density <= " + (f"{cross:.2f}" if cross else "none of the densities tried"))
    results["sparse"] = {"rows": rows, "crossover_density": cross}


def zoo_table(args, results, dtype: str = "float32") -> None:
    section(f"6. The zoo: params, MACs per second, {args.device} {dtype} RTF ({args.seconds:g} s, batch 1, taking "
            "turns), operator calls")
    builders = {f"melhubert-{ms}ms": (lambda ms=ms: melhubert(ms)) for ms in (10, 20)}
    builders.update({name: (lambda name=name: build_zoo_model(name)) for name in ZOO})
    rows, calls = [], []
    for name, build in tqdm(builders.items(), desc="building", file=sys.stderr):
        model = build()
        counts = count_parameters(model)
        rows.append({"model": name, "params": counts["params"], "params_with_heads": counts["total"],
                     "macs_per_second": macs_per_second(model), "operator_calls": operator_calls(model)})
        calls.append(forward_of(model, args.seconds, device=args.device, dtype=dtype))
    times = time_interleaved(calls, args.device, args.warmup, args.repeats)
    print(f"{'model':18s} {'params':>8s} {'w/ heads':>8s} {'GMAC/s':>7s} {'RTF':>8s} {'(min, max)':>17s} "
          f"{'ops':>5s}")
    for r, t in zip(rows, times):
        r.update(rtf_stats(t, args.seconds))
        lo, hi = r["rtf_spread"]
        print(f"{r['model']:18s} {r['params'] / 1e6:7.2f}M {r['params_with_heads'] / 1e6:7.2f}M "
              f"{r['macs_per_second'] / 1e9:7.2f} {r['rtf']:8.4f} ({lo:.4f}, {hi:.4f}) {r['operator_calls']:5d}")
    print("params: inference path; w/ heads: the published convention (prediction heads etc.); MelHuBERT's RTF "
          "excludes log-Mel extraction (see section 4); ops: top-level aten operators per forward of 1 s")
    results["zoo" + suffix(dtype)] = rows


SECTIONS = {"throughput": throughput, "compressed": compressed_ratios, "lengths": length_sweep,
            "sparse": sparse_experiment, "zoo": zoo_table}
GPU_SECTIONS = ("compressed", "zoo")  # the sections that run on a GPU, once per precision


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="input length in seconds (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help=f"cuda: run sections {', '.join(GPU_SECTIONS)} on the GPU (default cpu)")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["float32"],
                        help="precisions of the GPU run (default float32; half precision needs --device cuda)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        check_device(args.device)
        for dtype in args.dtypes:
            check_dtype(dtype, args.device)
        sections = args.only or (GPU_SECTIONS if args.device == "cuda" else list(SECTIONS))
        if args.device == "cuda" and set(sections) - set(GPU_SECTIONS):
            raise CompressLibError(f"on a GPU only the sections {', '.join(GPU_SECTIONS)} run; drop the others "
                                   "from --only")
    except CompressLibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    results = {"torch": torch.__version__, "machine": platform.machine(), "device": args.device,
               "device_name": device_name, "threads": args.threads, "seconds": args.seconds,
               "repeats": args.repeats, "warmup": args.warmup, "dtypes": args.dtypes}
    with num_threads(args.threads):
        print(f"# Efficiency benchmark: torch {torch.__version__}, {platform.machine()}, "
              f"{torch.get_num_threads()} threads, device {args.device} ({device_name})")
        for name in sections:
            if name in GPU_SECTIONS:
                for dtype in args.dtypes:
                    SECTIONS[name](args, results, dtype)
            else:
                SECTIONS[name](args, results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
