"""`compress-lib pretrain`: two-stage masked-prediction pretraining of MelHuBERT (resumable; torchrun-ready).

    compress-lib pretrain --preset paper --out work/pretrain                 # stage 1 then stage 2
    compress-lib pretrain --preset smoke --out /tmp/p --stage 1              # one stage only
    torchrun --nproc_per_node=4 -m compress_lib.cli pretrain --preset paper --data DIR --out OUT

Interrupt it at any time and rerun the same command: it resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from compress_lib.commands.checks import progress_bars, seed_arg
from compress_lib.errors import check_output_folder
from compress_lib.presets import PRESET_NAMES


def add_arguments(parser) -> None:
    parser.add_argument("--preset", default="study", choices=PRESET_NAMES, help="scale of the run (default: study)")
    parser.add_argument("--out", required=True, type=Path, help="run folder (created; rerun with it to resume)")
    parser.add_argument("--data", default=Path("work/corpus"), type=Path,
                        help="corpus folder written by `compress-lib corpus` (default: work/corpus)")
    parser.add_argument("--frame-ms", type=int, default=20, choices=(10, 20), help="frame rate (default: 20)")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=None,
                        help="run only this stage (default: the preset's stages; paper and smoke: 1 then 2)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of initialisation, crops, masks, k-means")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args) -> int:
    from compress_lib.pretrain import pretrain

    from compress_lib.data.manifest import check_data_dir

    check_data_dir(args.data)
    check_output_folder(args.out)
    with progress_bars(not args.no_progress):
        final = pretrain(args.data, args.out, preset=args.preset, frame_ms=args.frame_ms, stage=args.stage,
                         seed=args.seed, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        summary = json.loads((Path(args.out) / "pretrain.json").read_text())
        for stage in (1, 2):
            s = summary.get(f"stage{stage}")
            if s:
                print(f"stage {stage}: {s['steps']} steps, final loss {s['final_loss']:.3f}, masked-prediction "
                      f"accuracy {s['final_accuracy']:.1%}, {s['train_seconds'] / 60:.1f} min of training")
        print(f"model: {final}")
    return 0
