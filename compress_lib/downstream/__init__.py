"""SUPERB-style downstream evaluation of frozen upstreams: phone recognition (PER) and speaker ID (accuracy).

- `upstream.py`: checkpoints, random-init twins, the log-Mel baseline and zoo models as hidden-state
  producers, with a content-keyed on-disk cache of their hidden states;
- `probes.py`: the weighted-sum probes, CTC greedy decoding, phone error rate, accuracy;
- `evaluate.py`: probe training with the shared loop, model selection on dev, test scores, the presets.
"""

from compress_lib.downstream.evaluate import (
    DOWNSTREAM_PRESETS, TASKS, EvaluationJob, ProbeHParams, evaluate_many, evaluate_upstream, finished_evaluation,
    probe_hparams, summary_row,
)
from compress_lib.downstream.upstream import Upstream, hidden_states_for_split, load_upstream

__all__ = [
    "DOWNSTREAM_PRESETS", "TASKS", "EvaluationJob", "ProbeHParams", "Upstream", "evaluate_many", "evaluate_upstream",
    "finished_evaluation", "hidden_states_for_split", "load_upstream", "probe_hparams", "summary_row",
]
