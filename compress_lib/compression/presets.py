"""Hyperparameters of the compression methods, one `CompressSettings` per preset.

The `paper` preset holds the paper's values (sections IV-B..E, V-D). `study` scales them so that every
trajectory of both frame rates fits about 1.5 hours on 2 CPU cores with the study model; `smoke` runs each
method in seconds. Each field's comment gives the paper's value.

Sizes that depend on the model are fractions of the teacher's: the paper removes 12 of 144 heads per step
(1/12) and 128 of 3072 FFN units per layer per step (1/24); the study model (6 layers, 24 heads, 1024 units)
removes the same fractions (2 heads), or a multiple of them where noted. Depths scale with the teacher: the
paper's 2- and 6-layer students of a 12-layer teacher are 1- and 3-layer students of the 6-layer study model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from compress_lib.errors import CompressLibError, check_choice
from compress_lib.overrides import parse_overrides
from compress_lib.presets import check_preset

HEAD_SCORES = ("gradient", "l1")
DISTILL_INITS = ("random", "teacher")


@dataclass(frozen=True)
class CompressSettings:
    # -- data and bookkeeping (crop length: the pretraining preset's crop_frames) --------------------------------
    batch_size: int = 4  # crops per fine-tuning / distillation step (paper: 4)
    eval_batches: int = 16  # fixed batches on which every point's loss is measured (same for every method)
    save_every: int = 1000  # steps between resumable saves inside a stage
    clip_norm: float = 10.0  # gradient clipping of every update (MelHuBERT's runner: 10)
    # -- fine-tuning after each structured pruning step (heads, ffn, combined) -----------------------------------
    finetune_steps: int = 25_000  # steps after each pruning step (paper: 25,000)
    finetune_lr: float = 1e-5  # Adam (paper: 1e-5)
    # -- weight pruning --------------------------------------------------------------------------------------
    weight_ema_decay: float = 0.9998  # decay of the loss EMA (paper: 0.9998)
    weight_ema_tolerance: float = 0.001  # converged when the EMA changed less than this ... (paper: 0.001)
    weight_ema_window: int = 15_000  # ... over this many steps (paper: 15,000)
    weight_max_steps: int = 500_000  # cap on the steps of one pruning step (paper: none; only a safety net)
    weight_min_density: float = 0.05  # where the trajectory ends (paper: 5%, the end of its schedule)
    # -- head pruning ----------------------------------------------------------------------------------------
    heads_per_step: float = 1 / 12  # fraction of the teacher's heads removed per step (paper: 12 of 144)
    head_score: str = "gradient"  # "gradient" (Michel et al.; paper) or "l1" (the paper's weaker alternative)
    head_score_fraction: float = 0.25  # fraction of the training utterances the importance is summed over (paper: 25%)
    keep_best_head: bool = True  # every layer keeps its most important head (paper's code: yes)
    heads_min_density: float = 0.0  # where the trajectory ends (0: as far as keep_best_head allows)
    # -- low-rank approximation (FFN hidden-unit pruning) ---------------------------------------------------
    ffn_units_per_step: float = 1 / 24  # fraction of the FFN width removed per layer per step (paper: 128 of 3072)
    ffn_min_density: float = 1 / 6  # where the trajectory ends (paper: 3072 -> 512)
    # -- knowledge distillation ------------------------------------------------------------------------------
    distill_layers: tuple[int, ...] = (2, 6)  # student depths (paper: 2 and 6)
    distill_steps: int = 200_000  # updates per student (not stated in the paper; DistilHuBERT's 200k)
    distill_lr: float = 1e-4  # Adam (paper: 1e-4)
    distill_warmup_steps: int = 0  # linear warm-up (paper: none)
    distill_temperature: float = 1.0  # softmax temperature of both distributions (paper: studied; 1 in its code)
    distill_masked_input: bool = False  # mask the student's input (paper: no; an ablation)
    distill_init: str = "random"  # "random" or "teacher" (front-end and first layers copied; paper: random)
    # -- combined recipe (paper section V-D) ------------------------------------------------------------------
    combined_layers: int = 6  # depth of the distilled student (paper: 6)
    combined_head_density: float = 0.5  # heads kept (paper: 72 -> 36)
    combined_head_steps: int = 2  # in this many pruning steps (paper: 2)
    combined_ffn_density: float = 1 / 6  # FFN width kept (paper: 3072 -> 512)
    combined_ffn_steps: int = 5  # in this many pruning steps (paper: 5)

    def __post_init__(self):
        check_choice(self.head_score, HEAD_SCORES, "head score")
        check_choice(self.distill_init, DISTILL_INITS, "student initialisation")
        if self.distill_temperature <= 0:
            raise CompressLibError(f"distillation temperature must be > 0, got {self.distill_temperature}")
        if not 0 < self.head_score_fraction <= 1:
            raise CompressLibError(f"head_score_fraction must be in (0, 1], got {self.head_score_fraction}")
        if any(int(k) < 1 for k in self.distill_layers):
            raise CompressLibError(f"student depths must be >= 1, got {list(self.distill_layers)}")
        object.__setattr__(self, "distill_layers", tuple(int(k) for k in self.distill_layers))

    def replace(self, **changes) -> "CompressSettings":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CompressLibError(f"unknown compression settings {sorted(unknown)}; valid: "
                                   f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["distill_layers"] = list(self.distill_layers)
        return d


COMPRESS_PRESETS = {
    # Seconds per method on the tiny smoke model (4 layers, 8 heads, FFN 64).
    "smoke": CompressSettings(
        batch_size=2, eval_batches=2, save_every=2,
        finetune_steps=3, finetune_lr=1e-4,
        weight_ema_decay=0.5, weight_ema_tolerance=0.05, weight_ema_window=2, weight_max_steps=4,
        weight_min_density=0.5,
        heads_per_step=1 / 4, head_score_fraction=0.25,
        ffn_units_per_step=1 / 4, ffn_min_density=0.5,
        distill_layers=(1, 2), distill_steps=6, distill_lr=5e-4, distill_warmup_steps=2,
        combined_layers=2, combined_head_steps=1, combined_ffn_steps=2,
    ),
    # The lab model (4 layers x 192, 16 heads, FFN 768): the study's rules with fewer steps; 2 heads and 96 FFN
    # units per layer removed per step; students and truncations of 1 and 2 layers (the paper's 2 and 6 of 12).
    "lab": CompressSettings(
        batch_size=4, eval_batches=4, save_every=10, clip_norm=5.0,
        finetune_steps=20, finetune_lr=5e-5,
        weight_ema_decay=0.85, weight_ema_tolerance=0.005, weight_ema_window=20, weight_max_steps=25,
        weight_min_density=0.3,
        heads_per_step=1 / 8, head_score_fraction=0.05,
        ffn_units_per_step=1 / 8, ffn_min_density=0.25,
        distill_layers=(1, 2), distill_steps=200, distill_lr=5e-4, distill_warmup_steps=20, combined_layers=2,
        combined_head_steps=2, combined_ffn_steps=3,
    ),
    # The study model (6 layers x 256, 24 heads, FFN 1024): students and truncations of 1 and 3 layers (the
    # paper's 2 and 6 of 12); `combined` starts from the 3-layer student of `distill` (--student). The learning
    # rates keep the paper's ratios to the pretraining rate (fine-tuning 1e-5 : 1e-4, distillation 1 : 1)
    # applied to 5e-4 (fine-tuning at 1:20 and distillation at 1:2 of the study's pretraining rate, 1e-3: a few
    # hundred steps at 1e-5 would not move the model). Weight pruning follows the paper's schedule down to 30%;
    # the convergence test watches an EMA with a 25-step time constant over 3 time constants (paper: 5,000 over 15,000 steps).
    # FFN pruning removes 1/12 of the width per step (twice the paper's 1/24): 85 of 1024 units per layer, so 10
    # steps leave 174 units (density 0.170, the step nearest the paper's 1/6; 1/6 itself would take an 11th).
    "study": CompressSettings(
        batch_size=4, eval_batches=8, save_every=20, clip_norm=5.0,
        finetune_steps=80, finetune_lr=5e-5,
        weight_ema_decay=0.96, weight_ema_tolerance=0.005, weight_ema_window=75, weight_max_steps=100,
        weight_min_density=0.3,
        heads_per_step=1 / 12, head_score_fraction=0.03,
        ffn_units_per_step=1 / 12, ffn_min_density=0.17,
        distill_layers=(1, 3), distill_steps=800, distill_lr=5e-4, distill_warmup_steps=50, combined_layers=3,
    ),
    "paper": CompressSettings(),
}


def parse_compress_overrides(value, label: str = "settings") -> dict:
    """The fields a notebook's `settings` parameter (a dict or "field=value,...") or the CLI's --set changes,
    typed and checked (see compress_lib.overrides)."""
    return parse_overrides(value, CompressSettings().to_dict(), "compression setting", label)


def compress_settings(preset: str, **overrides) -> CompressSettings:
    """The settings of a preset with `overrides` (field name -> value) applied."""
    return COMPRESS_PRESETS[check_preset(preset)].replace(**overrides)
