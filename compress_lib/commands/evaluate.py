"""`compress-lib evaluate TASK --upstream CKPT_OR_NAME --preset NAME --out DIR [--data DIR]`

Trains the SUPERB-style probe of TASK (`pr`: phone recognition, PER; `sid`: speaker ID, accuracy) on a frozen
upstream, selects it on dev, scores test, writes DIR/<task>.json and fills the model's row of
`data/results/<preset>/summary.csv`. `--upstream` takes a checkpoint path, `fbank` (the log-Mel floor),
`random-init:<checkpoint>` (the untrained twin of that architecture), `int8:<checkpoint>` (that model with
int8 weights in ONNX Runtime) or a zoo model name.

Before any work it checks the paths (--out, --cache-dir, --results-dir name folders it can write), that the
summary table is one (a `summary.csv` holding anything else is refused, naming it: move it aside, delete it or
pass --no-summary; it is never overwritten silently) and that the longest utterance of the task fits the
machine's memory in self-attention (see `compress_lib.efficiency.runtime.check_attention_memory`).
"""

from __future__ import annotations

from pathlib import Path

from compress_lib.commands.checks import non_negative_float_arg, positive_int_arg, progress_bars, seed_arg
from compress_lib.config import FRAME_MS_CHOICES
from compress_lib.errors import CompressLibError, check_input_file, check_output_folder
from compress_lib.presets import PRESET_NAMES


def add_arguments(parser) -> None:
    from compress_lib.downstream.evaluate import TASKS
    from compress_lib.downstream.upstream import DEFAULT_CACHE_GB

    parser.add_argument("task", choices=TASKS, help="pr (phone recognition) or sid (speaker identification)")
    parser.add_argument("--upstream", required=True,
                        help="checkpoint path, fbank, random-init:<checkpoint>, int8:<checkpoint> or a zoo model name")
    parser.add_argument("--preset", default="study", choices=PRESET_NAMES,
                        help="probe hyperparameters (default: study)")
    parser.add_argument("--out", required=True, type=Path, help="folder for <task>.json, the log and the probe state")
    parser.add_argument("--data", default=Path("work/corpus"), type=Path, help="corpus folder (default: work/corpus)")
    parser.add_argument("--num-layers", type=int, default=None,
                        help="run only the first k layers (default: the checkpoint's own, else all)")
    parser.add_argument("--frame-ms", type=int, choices=FRAME_MS_CHOICES, default=None,
                        help="frame rate of the fbank upstream (default 20); checkpoints use their own")
    parser.add_argument("--name", default=None, help="model name in the results table (default: from the checkpoint)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the probe (and of a random-init twin)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="hidden-state cache, shareable between evaluations (default: <out>/hidden_cache)")
    parser.add_argument("--cache-gb", type=non_negative_float_arg, default=DEFAULT_CACHE_GB,
                        help=f"least recently used cache files are deleted beyond this (default {DEFAULT_CACHE_GB:g})")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="results root holding <preset>/summary.csv (default: the project's data/results)")
    parser.add_argument("--threads", type=positive_int_arg, default=1,
                        help="threads of the upstream forward (default 1, fastest on a shared machine; run several "
                             "evaluations at once to use more cores)")
    parser.add_argument("--no-summary", action="store_true", help="do not write the summary.csv row")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--no-profile", action="store_true",
                        help="leave the efficiency columns of the summary row as they are")


def run(args) -> int:
    from compress_lib.downstream.evaluate import evaluate_upstream, summary_row
    from compress_lib.downstream.upstream import load_upstream
    from compress_lib.results import check_summary_table, summary_path, update_summary

    if not args.data.is_dir():
        raise CompressLibError(f"corpus folder {args.data} does not exist; generate it with `compress-lib corpus "
                               f"--out {args.data}` or pass --data")
    check_output_folder(args.out)
    if args.cache_dir is not None:
        check_output_folder(args.cache_dir, "--cache-dir")
    if not args.no_summary:
        if args.results_dir is not None:
            check_output_folder(args.results_dir, "--results-dir")
        check_summary_table(summary_path(args.preset, args.results_dir), fix="pass --no-summary")
    check_upstream_path(args.upstream)
    upstream = load_upstream(args.upstream, frame_ms=args.frame_ms, num_layers=args.num_layers, seed=args.seed,
                             name=args.name)
    check_longest_utterance(upstream, args.task, args.data)
    with progress_bars(not args.no_progress):
        result = evaluate_upstream(args.task, upstream, args.data, args.preset, args.out, cache_dir=args.cache_dir,
                                   seed=args.seed, max_cache_gb=args.cache_gb, threads=args.threads)
    where = ""
    if not args.no_summary:
        path = summary_path(args.preset, args.results_dir)
        update_summary(path, summary_row(upstream, result, timed=not args.no_profile))
        where = f"; row {upstream.name!r} in {path}"
    metric = "PER" if args.task == "pr" else "accuracy"
    print(f"{args.task} {upstream.name} ({upstream.frame_ms} ms): test {metric} {result['test']:.2f}% "
          f"(dev {result['dev']:.2f}% at step {result['best_step']}), {result['seconds']['total']:.0f} s "
          f"-> {Path(args.out) / (args.task + '.json')}{where}")
    return 0


def check_upstream_path(spec: str) -> None:
    """A checkpoint given as a folder gets a hint to point at the model.pt inside."""
    from compress_lib.downstream.upstream import RANDOM_INIT_PREFIX

    path = Path(spec.removeprefix(RANDOM_INIT_PREFIX))
    if path.is_dir():
        check_input_file(path, "--upstream")


def check_longest_utterance(upstream, task: str, data_dir) -> None:
    """Refuse before any work a corpus whose longest utterance would not fit in memory in self-attention."""
    from compress_lib.data.manifest import read_split
    from compress_lib.downstream.evaluate import SPLITS
    from compress_lib.efficiency.runtime import attention_frames, check_attention_memory, max_attention_heads

    if upstream.model is None:  # fbank: no attention
        return
    longest = max((u for split in SPLITS[task] for u in read_split(data_dir, split)), key=lambda u: u.duration)
    frames = attention_frames(upstream.model, longest.duration)
    check_attention_memory(frames, max_attention_heads(upstream.model), 1, "cpu",
                           what=f"utterance {longest.path} ({longest.duration:,.0f} s)")
