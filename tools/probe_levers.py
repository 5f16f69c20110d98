"""Measure what cheaper probe settings cost in quality: dev and test scores and CPU seconds per setting.

    python tools/probe_levers.py --upstream work/check/pretrain-20ms/model.pt \\
        --upstream random-init:work/check/pretrain-20ms/model.pt --upstream fbank --corpus work/corpus \\
        --csv data/probe_levers.csv

For each upstream, every task's probe is trained with the `study` preset's settings at each candidate step
count (for speaker ID also on a training set of fewer utterances per speaker, which cuts the hidden states to
compute). Unlike `tools/tune_probe.py`, which chooses a setting on dev, this reports
test too: a lever is kept when every upstream's test score stays within its binomial standard error
(docs/run_profile.md). The hidden states are cached per upstream and split, so a rerun costs only the probes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

from compress_lib.downstream import load_upstream
from compress_lib.downstream.evaluate import (
    DOWNSTREAM_PRESETS,
    ProbeData,
    load_task_data,
    probe_metric,
    train_probe,
)

# (task, label, changes to the study preset's probe settings, SID training utterances per speaker or None).
# Step counts are absolute, so the table reads the same whatever the preset now says (PR: 1,000 steps; SID:
# 5,000, chosen from this table; it was 20,000 before).
CANDIDATES = (
    ("pr", "1000 steps", {"steps": 1000}, None),
    ("pr", "600 steps", {"steps": 600}, None),
    ("pr", "400 steps", {"steps": 400}, None),
    ("sid", "20000 steps", {"steps": 20_000}, None),
    ("sid", "5000 steps", {"steps": 5000}, None),
    ("sid", "2000 steps", {"steps": 2000}, None),
    ("sid", "5000 steps, 12 train utterances per speaker", {"steps": 5000}, 12),
)


def per_speaker_subset(data: ProbeData, per_speaker: int) -> ProbeData:
    """The first `per_speaker` utterances of every speaker (split order), as a smaller training set."""
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(data.labels.tolist()):
        if seen.get(label, 0) < per_speaker:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    index = torch.tensor(keep)
    states = dataclasses.replace(data.states, ids=[data.states.ids[i] for i in keep],
                                 lengths=data.states.lengths[index], pooled=data.states.pooled[index], frames=None)
    return ProbeData(states=states, labels=data.labels[index])


def standard_error(task: str, value: float, n: int) -> float:
    """Binomial standard error of an accuracy in percent (SID); for PER the same formula over utterances is
    only a rough scale, reported for orientation."""
    p = value / 100 if task == "sid" else min(value / 100, 1.0)
    return 100 * math.sqrt(max(p * (1 - p), 1e-12) / n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", action="append", required=True,
                        help="checkpoint, random-init:<checkpoint> or fbank (repeat)")
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus"))
    parser.add_argument("--cache-dir", type=Path, default=Path("work/probe-levers-cache"))
    parser.add_argument("--tasks", default="pr,sid")
    parser.add_argument("--frame-ms", type=int, default=20, help="frame rate of the fbank upstream")
    parser.add_argument("--csv", type=Path, default=None, help="append one row per (upstream, setting) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tasks = args.tasks.split(",")

    for spec in args.upstream:
        upstream = load_upstream(spec, frame_ms=args.frame_ms if spec == "fbank" else None)
        for task in tasks:
            cpu = time.process_time()
            (train_data, dev_data, test_data), classes, _, _ = load_task_data(task, upstream, args.corpus,
                                                                               args.cache_dir, progress=False)
            hidden_cpu_s = time.process_time() - cpu
            for candidate_task, label, changes, per_speaker in CANDIDATES:
                if candidate_task != task:
                    continue
                hp = dataclasses.replace(DOWNSTREAM_PRESETS["study"][task], **changes)
                train_set = per_speaker_subset(train_data, per_speaker) if per_speaker else train_data
                cpu = time.process_time()
                run = train_probe(task, train_set, dev_data, len(classes), hp, progress=False)
                test = probe_metric(task, run.probe, test_data)
                row = {"upstream": spec, "method": upstream.method, "frame_ms": upstream.frame_ms, "task": task,
                       "setting": label, "steps": hp.steps, "train_utterances": len(train_set.states),
                       "dev": round(run.best_dev, 3), "test": round(test, 3),
                       "test_standard_error": round(standard_error(task, test, len(test_data.states)), 2),
                       "probe_cpu_s": round(time.process_time() - cpu, 1),
                       "hidden_states_cpu_s": round(hidden_cpu_s, 1)}
                print(", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
                if args.csv:
                    new = not args.csv.is_file()
                    with args.csv.open("a", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=list(row))
                        if new:
                            writer.writeheader()
                        writer.writerow(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
