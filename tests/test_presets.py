"""A preset is declared once per part: every per-part table names exactly the presets of the registry."""

import pytest

from compress_lib.compression.presets import COMPRESS_PRESETS
from compress_lib.config import MODEL_PRESETS, config_for_preset
from compress_lib.downstream.evaluate import DOWNSTREAM_PRESETS
from compress_lib.errors import CompressLibError
from compress_lib.presets import PRESET_NAMES, STUDY_SCALES, check_preset_tables, study_scale
from compress_lib.pretrain import PRETRAIN_PRESETS, pretrain_settings

TABLES = {"MODEL_PRESETS": MODEL_PRESETS, "PRETRAIN_PRESETS": PRETRAIN_PRESETS, "COMPRESS_PRESETS": COMPRESS_PRESETS,
          "DOWNSTREAM_PRESETS": DOWNSTREAM_PRESETS, "STUDY_SCALES": STUDY_SCALES}


def test_every_part_declares_exactly_the_registry_presets():
    check_preset_tables(TABLES)
    with pytest.raises(CompressLibError, match="MISSING declares presets"):
        check_preset_tables({"MISSING": {name: None for name in PRESET_NAMES[:-1]}})


def test_an_unknown_preset_names_the_valid_ones():
    with pytest.raises(CompressLibError, match="lab"):
        study_scale("labb")


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_each_preset_builds_a_model_and_pretraining_settings(preset):
    config = config_for_preset(preset, 20)
    assert config.num_layers == MODEL_PRESETS[preset]["num_layers"]
    assert pretrain_settings(preset, 20)["stage1_steps"] >= 1
    assert set(DOWNSTREAM_PRESETS[preset]) == {"pr", "sid"}
    scale = study_scale(preset)
    assert set(scale.frame_rates) <= {10, 20} and scale.corpus_scale > 0
    # the students of the compression preset fit in its teacher
    assert max(COMPRESS_PRESETS[preset].distill_layers) <= config.num_layers
    assert COMPRESS_PRESETS[preset].combined_layers <= config.num_layers


def test_the_lab_preset_sits_between_smoke_and_study():
    sizes = {p: config_for_preset(p, 20).embed_dim * config_for_preset(p, 20).num_layers for p in PRESET_NAMES}
    assert sizes["smoke"] < sizes["lab"] < sizes["study"]
    steps = {p: pretrain_settings(p, 20)["stage1_steps"] for p in PRESET_NAMES}
    assert steps["smoke"] < steps["lab"] <= steps["study"]
    assert study_scale("lab").judged and not study_scale("smoke").judged
