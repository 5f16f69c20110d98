"""The four scales of the study, and how each runs the study as a whole.

- `smoke`: seconds, for tests; its numbers mean nothing.
- `lab`: minutes, for a class: the whole study at one frame rate (20 ms) in about 15 minutes on a
  2-core laptop, with a teacher that still learnt something (it beats its random-init twin on phone recognition).
- `study`: the default; every experiment of the study at both frame rates on a 2-core CPU from the stand-in corpus.
- `paper`: the paper's own sizes and hyperparameters, for LibriSpeech / VoxCeleb1 on GPUs.

A preset is declared once per part, in one table beside the code it configures:

| part | table | file |
|---|---|---|
| model sizes | `MODEL_PRESETS` | `compress_lib/config.py` |
| pretraining | `PRETRAIN_PRESETS` | `compress_lib/pretrain.py` |
| compression | `COMPRESS_PRESETS` | `compress_lib/compression/presets.py` |
| downstream probes | `DOWNSTREAM_PRESETS` | `compress_lib/downstream/evaluate.py` |
| the run as a whole (corpus, frame rates, threads, points evaluated, timing) | `STUDY_SCALES` | this file |

To add a preset: add its name to `PRESET_NAMES` and one entry to each of the five tables
(`tests/test_presets.py` checks that every table has exactly these names).
"""

from __future__ import annotations

from dataclasses import dataclass

from compress_lib.errors import CompressLibError, check_choice

PRESET_NAMES = ("smoke", "lab", "study", "paper")


def check_preset(name: str) -> str:
    return check_choice(name, PRESET_NAMES, "preset")


@dataclass(frozen=True)
class Timing:
    """How a real-time factor is measured (notebooks 09 and 10)."""

    seconds: float  # seconds of speech per timed forward
    warmup: int  # untimed forwards first
    repeats: int  # timed forwards (the median is reported)
    pass_repeats: int  # rounds of notebook 09's pass that times every compressed model in turns

    def forward_kwargs(self) -> dict:
        """seconds, warmup, repeats: the keyword arguments of `real_time_factor` and `profile_model`."""
        return {"seconds": self.seconds, "warmup": self.warmup, "repeats": self.repeats}


@dataclass(frozen=True)
class AnatomySettings:
    """Notebook 12: the sparse-kernel sweep and the profiler's runtime breakdown."""

    sizes: tuple[str, ...]  # model sizes (preset names) whose layers the sparse sweep times
    densities: tuple[float, ...]  # weight densities of the sweep, dense first
    sweep_warmup: int
    sweep_repeats: int
    profile_warmup: int
    profile_repeats: int


@dataclass(frozen=True)
class StudyScale:
    """What a preset means for the study as a whole (`make study PRESET=...`, notebooks 01-12)."""

    corpus_scale: float  # `compress-lib corpus --scale` (1 = about 7 hours of speech)
    frame_rates: tuple[int, ...]  # the frame rates (ms) `make study` runs
    one_thread: bool  # PyTorch on one thread (tiny models run several times faster so on a busy machine)
    judged: bool  # the sanity bars and verdicts say something at this scale (not at smoke)
    ablations: bool  # the paper's ablations (distillation with masked input, head-score variants) run
    points_per_trajectory: dict[int, int]  # frame rate -> points of a pruning trajectory evaluated downstream (0: all)
    evaluation_processes: int  # downstream evaluations at once, one thread each (0: one per CPU)
    timing: Timing
    anatomy: AnatomySettings

    @property
    def frame_rates_text(self) -> str:
        return ",".join(map(str, self.frame_rates))


_FULL_TIMING = Timing(seconds=10.0, warmup=2, repeats=5, pass_repeats=10)
_FULL_ANATOMY = AnatomySettings(
    sizes=("study", "paper"), densities=(1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.075, 0.05),
    sweep_warmup=2, sweep_repeats=15, profile_warmup=3, profile_repeats=20)

STUDY_SCALES = {
    "smoke": StudyScale(
        corpus_scale=0.02, frame_rates=(10, 20), one_thread=True, judged=False, ablations=False,
        points_per_trajectory={10: 2, 20: 2}, evaluation_processes=1,
        timing=Timing(seconds=1.0, warmup=1, repeats=1, pass_repeats=2),
        anatomy=AnatomySettings(sizes=("smoke",), densities=(1.0, 0.3, 0.05), sweep_warmup=1, sweep_repeats=2,
                                profile_warmup=1, profile_repeats=2)),
    # 20 ms only (half the frames of 10 ms), a half-size corpus, no ablations, and one point per pruning
    # trajectory evaluated downstream (its most compressed; the dense model is the other end); `make study PRESET=lab` takes
    # about 15 minutes on 2 cores, deployment runtimes (notebook 14) included (docs/lab_preset.md).
    "lab": StudyScale(
        corpus_scale=0.5, frame_rates=(20,), one_thread=False, judged=True, ablations=False,
        points_per_trajectory={10: 1, 20: 1}, evaluation_processes=0,
        timing=Timing(seconds=4.0, warmup=1, repeats=3, pass_repeats=5),
        anatomy=AnatomySettings(sizes=("lab",), densities=(1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.05), sweep_warmup=2,
                                sweep_repeats=7, profile_warmup=2, profile_repeats=7)),
    # Three points of each pruning trajectory at 20 ms (a quarter, half and three quarters of the way from the
    # dense model) and its end at 10 ms, where every evaluation costs about twice as much (twice the frames);
    # every student and truncation at both (docs/run_profile.md: what each evaluation costs).
    "study": StudyScale(
        corpus_scale=1.0, frame_rates=(10, 20), one_thread=False, judged=True, ablations=True,
        points_per_trajectory={10: 1, 20: 3}, evaluation_processes=0, timing=_FULL_TIMING, anatomy=_FULL_ANATOMY),
    "paper": StudyScale(
        corpus_scale=1.0, frame_rates=(10, 20), one_thread=False, judged=True, ablations=True,
        points_per_trajectory={10: 0, 20: 0}, evaluation_processes=0, timing=_FULL_TIMING, anatomy=_FULL_ANATOMY),
}


def study_scale(preset: str) -> StudyScale:
    """The run-level settings of a preset (raises a CompressLibError naming the valid presets)."""
    return STUDY_SCALES[check_preset(preset)]


def check_preset_tables(tables: dict[str, dict]) -> None:
    """Raise if any per-part table (name -> {preset: settings}) does not declare exactly PRESET_NAMES."""
    for name, table in tables.items():
        if tuple(table) != PRESET_NAMES:
            raise CompressLibError(f"{name} declares presets {tuple(table)}; expected {PRESET_NAMES} in this order")
