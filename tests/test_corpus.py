"""The generated stand-in corpus: splits, speakers, text, audio format, determinism, the command."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from compress_lib.cli import main
from compress_lib.data import generate as G
from compress_lib.data.manifest import PR_SPLITS, SID_SPLITS, SPLITS, read_split
from compress_lib.errors import CompressLibError


@pytest.fixture(scope="module")
def splits(smoke_corpus):
    return {split: read_split(smoke_corpus, split) for split in SPLITS}


@pytest.fixture(scope="module")
def info(smoke_corpus):
    return json.loads((smoke_corpus / "corpus.json").read_text())


def test_every_split_has_utterances_with_phones(splits):
    for split, utts in splits.items():
        assert len(utts) >= 4, split
        for u in utts:
            assert u.phones and u.text and u.duration > 0.5 and u.path.is_file()


def test_audio_is_16k_mono_16bit_and_durations_match(splits):
    for u in splits["pr-test"] + splits["sid-dev"]:
        info = sf.info(str(u.path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert info.frames == round(u.duration * 16000)
        samples, _ = sf.read(str(u.path), dtype="int16")
        assert np.count_nonzero(samples == 0) < 0.2 * len(samples)  # a noise floor, no digital silence


def test_text_disjoint_every_sentence_used_once(splits):
    texts = [u.text for utts in splits.values() for u in utts]
    assert len(texts) == len(set(texts))
    sentences = [s for t in texts for s in t.replace("?", ".").replace("!", ".").split(". ") if s]
    assert len(sentences) == len(set(sentences))


def test_speaker_design(splits, info):
    spk = {split: {u.speaker for u in utts} for split, utts in splits.items()}
    train = spk["pretrain"] | spk["pr-train"]
    assert spk["pr-train"] <= set(info["speakers"]) and not spk["pr-dev"] & train and not spk["pr-test"] & train
    assert not spk["pr-dev"] & spk["pr-test"]
    for split in PR_SPLITS:  # phone recognition: rhotic voices only
        assert all(info["speakers"][s]["rhotic"] for s in spk[split]), split
    assert spk["sid-train"] == spk["sid-dev"] == spk["sid-test"] and len(spk["sid-train"]) >= 4
    assert not spk["sid-train"] & (train | spk["pr-dev"] | spk["pr-test"])
    engines = {info["speakers"][s]["engine"] for s in spk["pretrain"]}
    assert engines == {"espeak-ng", "flite"}


def test_corpus_json_records_versions_counts_and_baseline(info, splits):
    assert info["status"] == "complete" and info["seed"] == 0 and info["scale"] == 0.02
    assert info["engines"]["espeak-ng"].startswith("eSpeak NG") and info["engines"]["flite"]
    for split in SPLITS:
        assert info["splits"][split]["utterances"] == len(splits[split])
        assert info["splits"][split]["speakers"] == len({u.speaker for u in splits[split]})
    base = info["trivial_sid_baseline"]
    assert base["speakers"] == info["splits"]["sid-test"]["speakers"]
    assert 0 <= base["gaussian_shared_cov_test_accuracy"] <= 1
    assert info["recipe"] == G.load_recipe()


def test_voice_variants_make_different_voices(splits, info):
    variants = [info["speakers"][s]["variant"] for s in {u.speaker for u in splits["sid-train"]}]
    assert len({json.dumps(v, sort_keys=True) for v in variants}) == len(variants)


def _digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_byte_identical_whatever_jobs(tmp_path):
    G.generate_corpus(tmp_path / "one", scale=0.01, seed=3, jobs=1, progress=False)
    G.generate_corpus(tmp_path / "two", scale=0.01, seed=3, jobs=2, progress=False)
    one, two = _digest(tmp_path / "one"), _digest(tmp_path / "two")
    assert one == two and len(one) > 40


def test_seed_changes_voices_and_text():
    recipe = G.load_recipe()
    sentences = [f"Sentence number {i} is here" for i in range(2000)]
    plans = [G.plan_corpus(recipe, G.make_speakers(recipe, s), sentences, s, 0.02) for s in (0, 0, 1)]
    assert plans[0] == plans[1]
    assert [t.text for t in plans[0]] != [t.text for t in plans[2]]
    assert plans[0][0].speaker.variant != plans[2][0].speaker.variant or plans[0][0].speaker.engine == "flite"


def test_scale_sets_counts_and_keeps_minimums():
    recipe = G.load_recipe()
    sentences = [f"Sentence number {i} is here" for i in range(20000)]
    for scale in (0.001, 0.02, 1.0):
        plan = G.plan_corpus(recipe, G.make_speakers(recipe, 0), sentences, 0, scale)
        counts = {s: sum(t.split == s for t in plan) for s in SPLITS}
        sid_speakers = {s: {t.speaker.name for t in plan if t.split == s} for s in SID_SPLITS}
        assert min(counts.values()) >= 4
        assert len(sid_speakers["sid-train"]) >= 4 and sid_speakers["sid-train"] == sid_speakers["sid-test"]
        if scale == 1.0:
            assert counts["pretrain"] == recipe["splits"]["pretrain"]["utterances"]
            assert len(sid_speakers["sid-test"]) == 60


def test_scale_too_large_for_the_text(tmp_path):
    with pytest.raises(CompressLibError, match=r"--scale 50 needs more than the \d+ WordNet sentences"):
        G.generate_corpus(tmp_path / "big", scale=50, progress=False)
    assert not (tmp_path / "big").exists()  # nothing written


def test_existing_corpus_is_reused(smoke_corpus, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise AssertionError("regenerated although complete")

    monkeypatch.setattr(G, "_run_tasks", fail)
    assert main(["corpus", "--out", str(smoke_corpus), "--scale", "0.02", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "already holds this corpus" in out and "pretrain" in out and "trivial speaker-ID baseline" in out


def test_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("mine")
    assert main(["corpus", "--out", str(tmp_path), "--scale", "0.02", "--quiet"]) == 2
    assert "is not empty and holds no corpus.json; name an empty or new folder" in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "mine"


def test_bad_scale_and_jobs(tmp_path, capsys):
    assert main(["corpus", "--out", str(tmp_path / "c"), "--scale", "0"]) == 2
    assert "--scale must be positive" in capsys.readouterr().err
    assert main(["corpus", "--out", str(tmp_path / "c"), "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_wordnet_sentences():
    sentences = G.wordnet_sentences()
    assert len(sentences) > 25000 and sentences == sorted(set(sentences))
    assert all(5 <= len(s.split()) <= 20 for s in sentences[:: 500])


def test_a_damaged_corpus_is_not_reused(smoke_corpus, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(smoke_corpus, copy, ignore=shutil.ignore_patterns(".cache"))
    info = G.read_corpus_info(copy)
    assert G.corpus_is_complete(copy, info)
    next((copy / "wav" / "sid-test").rglob("*.wav")).unlink()
    assert not G.corpus_is_complete(copy, info)
    assert not G.corpus_is_complete(copy, {**info, "status": "generating"})


def test_sentence_punctuation():
    assert G.as_sentence("he was in bondage to fear:;") == "He was in bondage to fear."
    assert G.as_sentence("is it raining?") == "Is it raining?"
