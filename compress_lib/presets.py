"""The three scales of the study.

- `smoke`: seconds, for tests.
- `study`: the default; every experiment of the study on a 2-core CPU from the stand-in corpus.
- `paper`: the paper's own sizes and hyperparameters, for LibriSpeech / VoxCeleb1 on GPUs.

Each subsystem keeps its own hyperparameters per preset beside its code (model sizes in `config.py`,
pretraining in `pretrain.py`, compression in `compression/`, downstream in `downstream/`); this module only
names the presets and checks a user's choice.
"""

from compress_lib.errors import check_choice

PRESET_NAMES = ("smoke", "study", "paper")


def check_preset(name: str) -> str:
    return check_choice(name, PRESET_NAMES, "preset")
