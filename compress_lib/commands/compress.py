"""`compress-lib compress METHOD`: a compression trajectory of a pretrained MelHuBERT (resumable).

    compress-lib compress weight   --teacher work/pretrain-20ms/model.pt --preset study --out work/weight-20ms
    compress-lib compress heads    --teacher T.pt --out DIR --head-score l1        # the weaker L1 score
    compress-lib compress distill  --teacher T.pt --out DIR --layers 2,6 --init teacher --masked-input
    compress-lib compress truncate --teacher T.pt --out DIR --layers 2,6
    compress-lib compress combined --teacher T.pt --out DIR --student DIR_DISTILL/points/1/model.pt

METHOD: weight, heads, ffn, distill, truncate, combined. The frame rate is the teacher's. DIR receives
trajectory.json (one point per density: loss, steps, seconds, shape) and points/<k>/model.pt. Interrupt at
any time and rerun the same command: it continues where it stopped. `--set FIELD=VALUE` overrides any
per-preset setting (see compress_lib/compression/presets.py).
"""

from __future__ import annotations

from pathlib import Path

from compress_lib.commands.checks import density_arg, positive_float_arg, progress_bars, seed_arg
from compress_lib.errors import CompressLibError, check_choice, check_input_file, check_output_folder
from compress_lib.presets import PRESET_NAMES

METHOD_CHOICES = ("weight", "heads", "ffn", "distill", "truncate", "combined")
PRUNING_METHODS = ("weight", "heads", "ffn")
DEPTH_METHODS = ("distill", "truncate")


def add_arguments(parser) -> None:
    parser.add_argument("method", metavar="METHOD", help=f"one of: {', '.join(METHOD_CHOICES)}")
    parser.add_argument("--teacher", required=True, type=Path, help="pretrained MelHuBERT checkpoint")
    parser.add_argument("--preset", default="study", choices=PRESET_NAMES, help="scale of the run (default: study)")
    parser.add_argument("--out", required=True, type=Path, help="trajectory folder (rerun with it to resume)")
    parser.add_argument("--data", default=Path("work/corpus"), type=Path,
                        help="corpus the teacher was pretrained on (default: work/corpus)")
    parser.add_argument("--frame-ms", type=int, choices=(10, 20), default=None,
                        help="check that the teacher has this frame rate (default: take the teacher's)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of batches, masks and student initialisation")
    parser.add_argument("--target-density", type=density_arg, default=None,
                        help="weight/heads/ffn: stop at this density (default: the preset's end point)")
    parser.add_argument("--layers", default=None, help="distill/truncate: student depths, e.g. 2,6 (default: preset)")
    parser.add_argument("--student", type=Path, default=None,
                        help="combined: start from this distilled student instead of distilling one")
    parser.add_argument("--head-score", choices=("gradient", "l1"), default=None,
                        help="heads/combined: importance score (default: gradient, as in the paper)")
    parser.add_argument("--no-keep-best-head", action="store_true",
                        help="heads/combined: allow a layer to lose all its heads")
    parser.add_argument("--temperature", type=positive_float_arg, default=None, help="distill/combined: softmax temperature")
    parser.add_argument("--masked-input", action="store_true", help="distill/combined: mask the student's input")
    parser.add_argument("--init", choices=("random", "teacher"), default=None,
                        help="distill/combined: student initialisation (default: random, as in the paper)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a compression setting of the preset (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def overrides_from_args(args) -> dict:
    """The CompressSettings fields the command line changes."""
    # the command's modules load when it runs, not when `compress-lib --help` starts (torch takes seconds)
    from compress_lib.compression.distill import parse_depths
    from compress_lib.compression.presets import parse_compress_overrides

    out = parse_compress_overrides(args.set, "--set")
    if args.layers is not None:
        out["distill_layers"] = parse_depths(args.layers, "--layers")
    if args.head_score is not None:
        out["head_score"] = args.head_score
    if args.no_keep_best_head:
        out["keep_best_head"] = False
    if args.temperature is not None:
        out["distill_temperature"] = args.temperature
    if args.masked_input:
        out["distill_masked_input"] = True
    if args.init is not None:
        out["distill_init"] = args.init
    return out


def check_paths(args) -> None:
    """The teacher (and student) are checkpoint files and --out can be written: before any work."""
    check_input_file(args.teacher, "--teacher")
    if args.student is not None:
        check_input_file(args.student, "--student")
    check_output_folder(args.out)


def load_data(data_dir, teacher_path):
    """The teacher's pretraining features and targets (see compress_lib.pretrain.load_pretraining_data)."""
    from compress_lib.data.manifest import check_data_dir
    from compress_lib.pretrain import load_pretraining_data

    check_data_dir(data_dir)
    return load_pretraining_data(data_dir, teacher_path)


def run(args) -> int:
    from compress_lib.checkpoint import load_checkpoint
    from compress_lib.compression import RUNNERS

    method = check_choice(args.method, METHOD_CHOICES, "compression method")
    if args.target_density is not None and method not in PRUNING_METHODS:
        raise CompressLibError(f"--target-density applies to {', '.join(PRUNING_METHODS)}; "
                               f"{method} takes --layers or preset settings")
    if args.student is not None and method != "combined":
        raise CompressLibError("--student applies to the combined method only")
    overrides = overrides_from_args(args)
    check_paths(args)
    Path(args.out).mkdir(parents=True, exist_ok=True)  # a folder that cannot be made fails before any work
    teacher_cfg = load_checkpoint(args.teacher).config
    if args.frame_ms is not None and args.frame_ms != teacher_cfg.frame_ms:
        raise CompressLibError(f"--frame-ms {args.frame_ms} but {args.teacher} is a {teacher_cfg.frame_ms} ms model; "
                               "drop --frame-ms or pass the matching teacher")
    feats, targets = load_data(args.data, args.teacher)
    kwargs = dict(preset=args.preset, seed=args.seed, progress=not args.no_progress, **overrides)
    if method in PRUNING_METHODS:
        kwargs["target_density"] = args.target_density
    if method == "combined":
        kwargs["student_path"] = args.student
    with progress_bars(not args.no_progress):
        points = RUNNERS[method](args.teacher, feats, targets, args.out, **kwargs)
    print(format_points(method, points))
    print(f"trajectory: {Path(args.out) / 'trajectory.json'}")
    return 0


def format_points(method: str, points: list[dict]) -> str:
    """A small table of a trajectory: one row per point."""
    rows = [f"{method}: {len(points)} points",
            f"{'k':>3}  {'stage':<32} {'density':>8} {'loss':>8} {'steps':>7} {'seconds':>8}  heads / ffn"]
    for p in points:
        s = p["structure"]
        rows.append(f"{p['index']:>3}  {p['stage'][:32]:<32} {p['density']:>8.4f} {p['loss']:>8.4f} {p['steps']:>7} "
                    f"{p['elapsed_s']:>8.1f}  {sum(s['layer_heads'])} / {sum(s['layer_ffn_dims'])}")
    return "\n".join(rows)
