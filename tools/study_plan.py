"""The plan of the study: its experiment notebooks in run order, and the book chapter each one fills.

One list shared by `tools/run_study.py` (what to run, what is missing), `tools/build_book.py` and the book tests
(every chapter of a notebook that has not run yet says so). A notebook `notebooks/<stem>.md` (jupytext MyST)
writes its results to `data/results/<preset>/<stem>/` and its executed copy to `data/results/<preset>/<stem>.ipynb`,
which `_toc.yml` lists as a section of its chapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
RESULTS_DIR = ROOT / "data" / "results"
PUBLISHED_PRESET = "study"  # the preset whose committed results the published book shows
PENDING_MARKER = "results-pending"  # CSS class of the note on a chapter whose notebook has not run yet


@dataclass(frozen=True)
class Experiment:
    stem: str  # notebooks/<stem>.md
    chapter: str  # book/<chapter>.md, the chapter the results belong to
    what: str  # one line: what the notebook computes
    frame_rates: str | None = None  # the rates it runs at (None: the study's); the smoke preset runs them all
    needs: tuple[str, ...] = ()  # notebooks whose results it reads (run_study --jobs starts it after them)
    # run_study --jobs never runs it beside another notebook: it times models (09, 10, 12, 13) or keeps both cores
    # busy by itself (02's pretraining, 08's worker processes)
    runs_alone: bool = False
    # run_study --jobs, with several frame rates: the notebook runs in two parts, the first frame rate on one thread
    # beside other notebooks, then every rate (continuing the first part: checkpoints and evaluations are reused;
    # alone only if `runs_alone` and `whole_runs_alone`), so that one rate's chain of notebooks runs beside the
    # other's (tools/run_study.py: plan_jobs)
    split_by_rate: bool = False
    whole_runs_alone: bool = True
    # run_study --jobs: beside another notebook it still gets one worker process per job slot (one thread each), not
    # one: 08's evaluations then take up a core as soon as the notebook beside them ends, instead of leaving it idle
    # until they finish (its results do not depend on the process count)
    fills_free_cores: bool = False
    # run_study --jobs, split by rate: every frame rate's part starts at once, side by side (not the first rate
    # only), and the whole notebook then merges them; for a notebook that reads no other (02: both teachers
    # pretrain from the corpus alone, so the 10 ms one no longer waits for the 20 ms one)
    rates_at_once: bool = False
    # rough minutes of the study preset on one thread, the first rate's part and the rest (run_study --jobs starts
    # the longest of equally urgent notebooks first; nothing depends on them but the order)
    minutes: tuple[float, float] = (0.0, 0.0)

    @property
    def source(self) -> Path:
        return NOTEBOOKS_DIR / f"{self.stem}.md"

    def executed(self, preset: str, results_dir: Path = RESULTS_DIR) -> Path:
        return results_dir / preset / f"{self.stem}.ipynb"

    def output_dir(self, preset: str, results_dir: Path = RESULTS_DIR) -> Path:
        return results_dir / preset / self.stem


# the compression notebooks, whose trajectories 08 evaluates and 12 times
_METHODS = ("03_weight_pruning", "04_head_pruning", "05_lowrank", "06_distillation", "07_combined")

EXPERIMENTS = (
    Experiment("01_corpus", "melhubert", "the embedded stand-in corpus: speakers, splits, phone labels"),
    Experiment("02_pretrain", "melhubert", "two-stage MelHuBERT pretraining and the random-init control",
               runs_alone=True, split_by_rate=True, whole_runs_alone=False, rates_at_once=True, minutes=(13, 32)),
    Experiment("03_weight_pruning", "weight_pruning", "iterative magnitude pruning along the density schedule",
               needs=("02_pretrain",), split_by_rate=True, minutes=(7, 13)),
    Experiment("04_head_pruning", "head_pruning", "gradient-scored head pruning, heads removed physically",
               needs=("02_pretrain",), split_by_rate=True, minutes=(7, 12)),
    Experiment("05_lowrank", "lowrank", "FFN hidden-unit pruning (the paper's low-rank approximation)",
               needs=("02_pretrain",), split_by_rate=True, minutes=(7, 12)),
    Experiment("06_distillation", "distillation", "2- and 6-layer students, first-2 / first-6 truncation",
               needs=("02_pretrain",), split_by_rate=True, minutes=(18, 23)),
    Experiment("07_combined", "combined", "distill to 6 layers, then prune heads, then FFN units",
               frame_rates="20",  # the paper runs its combined recipe on MelHuBERT-20ms only
               needs=("02_pretrain", "06_distillation"), minutes=(3, 0)),  # it starts from 06's 6-layer student
    Experiment("08_downstream", "downstream", "PR and SID against density (Figures 1 and 2)",
               needs=_METHODS, runs_alone=True, split_by_rate=True, fills_free_cores=True, minutes=(50, 45)),
    Experiment("09_efficiency", "efficiency", "parameters, MACs per second, real-time factor (Figure 3)",
               needs=("08_downstream",), runs_alone=True),
    Experiment("10_prior_work", "prior_work", "five published compressed models in the same framework (Figure 4)",
               needs=("08_downstream",), runs_alone=True),
    Experiment("11_smaller_faster", "smaller_faster", "runtime against MACs and parameters; the verdicts collected",
               needs=("09_efficiency", "10_prior_work")),
    Experiment("12_runtime_anatomy", "efficiency", "sparse-kernel crossover density; runtime breakdown per operator",
               needs=_METHODS, runs_alone=True),
    Experiment("13_lab", "teaching", "the lab: masked weights, MACs by hand, heads vs FFN units, RTF pitfalls",
               runs_alone=True),
    Experiment("14_deployment", "deployment", "every model in eager PyTorch, ONNX Runtime and ORT int8; int8 quality",
               needs=("08_downstream",), runs_alone=True),
)


# Chapter (book/<name>.md) -> the notebooks whose results it shows. A chapter with any of them not yet in the
# book carries a "Results pending" note naming them (tests/test_book.py checks both directions).
CHAPTER_NEEDS = {
    "melhubert": ("01_corpus", "02_pretrain"),
    "weight_pruning": ("03_weight_pruning",),
    "head_pruning": ("04_head_pruning",),
    "lowrank": ("05_lowrank",),
    "distillation": ("06_distillation",),
    "combined": ("07_combined",),
    "downstream": ("08_downstream",),
    # Figure 3 sets PER beside the three measures; 12 adds the sparse-kernel crossover and the runtime breakdown
    "efficiency": ("09_efficiency", "08_downstream", "12_runtime_anatomy"),
    "prior_work": ("10_prior_work", "08_downstream"),  # Figure 4 sets our PER beside the published models'
    # the verdicts need every experiment (the lab measures on its own; deployment has verdicts of its own)
    "smaller_faster": tuple(e.stem for e in EXPERIMENTS[2:] if e.chapter not in ("teaching", "deployment")),
    "teaching": ("13_lab",),
    "deployment": ("14_deployment", "08_downstream"),  # int8's quality is set beside 08's fp32 scores
}


def experiment(stem: str) -> Experiment:
    for e in EXPERIMENTS:
        if e.stem == stem:
            return e
    raise KeyError(f"no experiment {stem!r}; known: {', '.join(e.stem for e in EXPERIMENTS)}")
