"""Choose a probe's `study` hyperparameters on dev sets: every candidate setting on every upstream given.

    python tools/tune_probe.py sid --upstream work/study/pretrain-20ms/model.pt \\
        --upstream work/study/pretrain-20ms/random_init.pt --upstream fbank --corpus work/corpus \\
        --csv data/probe_search_sid.csv

The rule (issue 7, `DOWNSTREAM_PRESETS` in compress_lib/downstream/evaluate.py): the setting with the best dev
score of the *first* upstream given (the dense study model) becomes the preset, fixed for every model; the other
upstreams' dev scores are printed beside it so the reader sees whether the choice favours one of them. Only dev
sets are read. The grid is lr x steps (linear decay, the preset's batch and dev interval).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import torch

from compress_lib.downstream import load_upstream
from compress_lib.downstream.evaluate import DOWNSTREAM_PRESETS, ProbeHParams, better, tune_probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("pr", "sid"))
    parser.add_argument("--upstream", action="append", required=True,
                        help="checkpoint, random-init checkpoint or fbank (repeat; the first one chooses)")
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus"))
    parser.add_argument("--lr", default="1e-2,3e-2,1e-1", help="comma-separated learning rates")
    parser.add_argument("--steps", default="5000,20000", help="comma-separated step counts")
    parser.add_argument("--cache-dir", type=Path, default=Path("work/tune-probe-cache"))
    parser.add_argument("--csv", type=Path, default=None, help="write every (upstream, setting, dev) row here")
    parser.add_argument("--frame-ms", type=int, default=20, help="frame rate of the fbank upstream")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    base = DOWNSTREAM_PRESETS["study"][args.task]
    candidates = [dataclasses.replace(base, lr=float(lr), steps=int(steps), schedule="linear")
                  for lr in args.lr.split(",") for steps in args.steps.split(",")]
    rows = []
    for spec in args.upstream:
        upstream = load_upstream(spec, frame_ms=args.frame_ms if spec == "fbank" else None)
        for result in tune_probe(args.task, upstream, args.corpus, candidates, args.cache_dir):
            row = {"upstream": spec, "method": upstream.method, **result}
            rows.append(row)
            print(f"{spec}: lr {row['lr']:g}, {row['steps']} steps -> dev {row['dev']:.1f} "
                  f"(best at step {row['best_step']}, {row['seconds']:.0f} s)", flush=True)
    chooser = [r for r in rows if r["upstream"] == args.upstream[0]]
    best = chooser[0]
    for r in chooser[1:]:
        if better(args.task, r["dev"], best["dev"]):
            best = r
    print(f"chosen on {args.upstream[0]}: {ProbeHParams(**{f.name: best[f.name] for f in dataclasses.fields(ProbeHParams)})}")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            fields = ["upstream", "method", "lr", "steps", "batch", "eval_every", "schedule", "dev", "best_step",
                      "seconds", "chosen"]
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                same = all(r[k] == best[k] for k in ("lr", "steps"))
                writer.writerow({**r, "dev": round(r["dev"], 2), "seconds": round(r["seconds"], 1),
                                 "chosen": same})
    return 0


if __name__ == "__main__":
    sys.exit(main())
