"""One trial of the search that chose the `study` preset: pretrain a candidate, probe it beside its twin.

    python tools/study_search.py NAME '{"model": {...}, "pretrain": {...}}' --corpus work/corpus --out work/search
    python tools/study_search.py fbank --corpus work/corpus --out work/search          # the log-Mel floor

A trial overrides `MODEL_PRESETS["study"]` and `PRETRAIN_PRESETS["study"]` with the JSON's "model" and
"pretrain" entries, pretrains at 20 ms (stage 1 unless "stages" says otherwise; "snapshots": steps at which to
keep a copy of the model), then trains the PR and SID probes (the study's probe settings) on the final model, on
each snapshot and on the untrained twin (same initial weights). One JSON line per trial is appended to
OUT/results.jsonl; docs/study_preset.md and data/study_search.csv hold the trials behind the chosen preset.
Every trial is resumable (pretraining and probes), like the study itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from compress_lib import training
from compress_lib.checkpoint import save_checkpoint
from compress_lib.config import MODEL_PRESETS
from compress_lib.downstream import evaluate_upstream, load_upstream
from compress_lib.pretrain import PRETRAIN_PRESETS, pretrain


def probe(spec: str, corpus: Path, out: Path, row: dict, label: str) -> None:
    upstream = load_upstream(spec, frame_ms=20 if spec == "fbank" else None)
    for task in ("pr", "sid"):
        t0 = time.time()
        result = evaluate_upstream(task, upstream, corpus, "study", out / f"eval_{label}",
                                   cache_dir=out / "hidden_cache", progress=False)
        row[f"{label}_{task}"], row[f"{label}_{task}_dev"] = result["test"], result["dev"]
        row[f"{label}_{task}_s"] = round(time.time() - t0, 1)
    print(label, {k: v for k, v in row.items() if k.startswith(label)}, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="trial name (its folder under --out), or `fbank` for the log-Mel floor")
    parser.add_argument("spec", nargs="?", default="{}", help="JSON: model / pretrain overrides, snapshots, stages")
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus"))
    parser.add_argument("--out", type=Path, default=Path("work/search"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out, spec = args.out / args.name, json.loads(args.spec)
    row: dict = {"name": args.name, "spec": spec}
    if args.name == "fbank":
        probe("fbank", args.corpus, out, row, "fbank")
    else:
        MODEL_PRESETS["study"].update(spec.get("model", {}))
        PRETRAIN_PRESETS["study"].update(
            {k: ({int(a): b for a, b in v.items()} if isinstance(v, dict) else v)
             for k, v in spec.get("pretrain", {}).items()})
        snapshots = set(spec.get("snapshots", []))
        real_save = training.save_state

        def save_state(path, model, optimizer, step, log, extra=None, elapsed_s=0.0):  # keep snapshot copies
            real_save(path, model, optimizer, step, log, extra, elapsed_s)
            if step in snapshots and "stage1" in str(path):
                save_checkpoint(out / f"snap{step}.pt", training._unwrap(model), steps=step, snapshot=True)

        training.save_state = save_state
        t0 = time.time()
        final = pretrain(args.corpus, out, "study", frame_ms=20, stage=spec.get("stage", 1), seed=0, progress=False)
        row["pretrain_wall_s"] = round(time.time() - t0, 1)
        row["summary"] = json.loads((out / "pretrain.json").read_text())
        probe(str(final), args.corpus, out, row, "pretrained")
        for step in sorted(snapshots):
            probe(str(out / f"snap{step}.pt"), args.corpus, out, row, f"snap{step}")
        probe(str(out / "random_init.pt"), args.corpus, out, row, "random_init")
    shutil.rmtree(out / "hidden_cache", ignore_errors=True)
    with open(args.out / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
