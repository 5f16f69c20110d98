"""Audio reading and bad input: one test per way a file or a manifest can be wrong."""

import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from compress_lib.data import audio
from compress_lib.data.audio import SAMPLE_RATE, load_audio, write_wav
from compress_lib.data.manifest import read_split
from compress_lib.errors import CompressLibError


def _tone(seconds=0.5, rate=SAMPLE_RATE, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_load_audio_returns_mono_float32_at_16k(tmp_path):
    path = tmp_path / "tone.wav"
    write_wav(path, _tone())
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.shape == (8000,)
    assert wave.abs().max() <= 1.0 and abs(wave.abs().max().item() - 0.5) < 1e-3


def test_flac_reads_like_wav(tmp_path):
    x = np.round(_tone() * 32768).astype(np.int16)
    sf.write(tmp_path / "a.flac", x, SAMPLE_RATE)
    write_wav(tmp_path / "a.wav", x / 32768.0)
    assert torch.equal(load_audio(tmp_path / "a.flac"), load_audio(tmp_path / "a.wav"))


# -- bad input, one test each ----------------------------------------------------------------------


def test_missing_corpus_folder(tmp_path):
    with pytest.raises(CompressLibError, match=r"corpus folder .*nope does not exist; generate it with `compress-lib"):
        read_split(tmp_path / "nope", "pretrain")


def test_missing_split_manifest(tmp_path):
    with pytest.raises(CompressLibError, match=r"pr-dev.jsonl does not exist \(splits in .*: none\)"):
        read_split(tmp_path, "pr-dev")


def test_missing_audio_file(tmp_path):
    with pytest.raises(CompressLibError, match=r"audio file .*gone.wav does not exist; regenerate the corpus"):
        load_audio(tmp_path / "gone.wav")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(CompressLibError, match=r"empty.wav is empty \(0 bytes\); regenerate or re-download it"):
        load_audio(tmp_path / "empty.wav")


def test_truncated_wav(tmp_path):
    write_wav(tmp_path / "full.wav", _tone())
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(CompressLibError, match=r"cut.wav is truncated: its header promises 8000 samples, it holds"):
        load_audio(tmp_path / "cut.wav")


def test_truncated_flac(tmp_path):
    sf.write(tmp_path / "full.flac", np.random.default_rng(0).uniform(-0.5, 0.5, 16000), SAMPLE_RATE)
    data = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(CompressLibError, match=r"cut.flac is not readable audio .*truncated.*re-download"):
        load_audio(tmp_path / "cut.flac")


def test_non_audio_file(tmp_path):
    (tmp_path / "notes.wav").write_text("these are not samples\n")
    with pytest.raises(CompressLibError, match=r"notes.wav is not readable audio \(.*\); it is corrupt"):
        load_audio(tmp_path / "notes.wav")


def test_wrong_sample_rate_is_resampled_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "_warned_rates", set())
    sf.write(tmp_path / "a8k.wav", _tone(1.0, 8000), 8000, subtype="PCM_16")
    with pytest.warns(UserWarning, match=r"a8k.wav is sampled at 8000 Hz; resampling to 16000 Hz"):
        wave = load_audio(tmp_path / "a8k.wav")
    assert wave.shape == (16000,)
    spectrum = torch.fft.rfft(wave).abs()
    assert abs(spectrum.argmax().item() - 440) <= 1  # still a 440 Hz tone at the new rate (1 Hz bins)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per rate, not per file
        load_audio(tmp_path / "a8k.wav")


def test_stereo_is_an_error(tmp_path):
    sf.write(tmp_path / "st.wav", _tone(channels=2), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(CompressLibError, match=r"st.wav has 2 channels; .*mix it down first"):
        load_audio(tmp_path / "st.wav")


def test_file_without_samples(tmp_path):
    sf.write(tmp_path / "none.wav", np.zeros(0), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(CompressLibError, match=r"none.wav holds no samples"):
        load_audio(tmp_path / "none.wav")


def _manifest(tmp_path, rows):
    write_wav(tmp_path / "a.wav", _tone())
    (tmp_path / "pr-dev.jsonl").write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))


GOOD = {"id": "u1", "path": "a.wav", "duration": 0.5, "speaker": "s1", "phones": "hh ah l ow", "text": "hello"}


def test_manifest_row_pointing_at_nothing(tmp_path):
    _manifest(tmp_path, [GOOD, {**GOOD, "id": "u2", "path": "wav/missing.wav"}])
    with pytest.raises(CompressLibError, match=r"pr-dev.jsonl:2: audio file .*missing.wav does not exist; regenerate"):
        read_split(tmp_path, "pr-dev")


def test_manifest_bad_json(tmp_path):
    _manifest(tmp_path, [GOOD, "{not json\n"])
    with pytest.raises(CompressLibError, match=r"pr-dev.jsonl:2: not a JSON object"):
        read_split(tmp_path, "pr-dev")


def test_manifest_missing_key(tmp_path):
    _manifest(tmp_path, [{k: v for k, v in GOOD.items() if k != "speaker"}])
    with pytest.raises(CompressLibError, match=r"pr-dev.jsonl:1: missing key\(s\) speaker"):
        read_split(tmp_path, "pr-dev")


def test_manifest_unknown_phone(tmp_path):
    _manifest(tmp_path, [{**GOOD, "phones": "HH AH0 l ow"}])
    with pytest.raises(CompressLibError, match=r"phones \['AH0', 'HH'\] are not in the 39-phone CMU inventory"):
        read_split(tmp_path, "pr-dev")


def test_manifest_pr_row_without_phones(tmp_path):
    _manifest(tmp_path, [{**GOOD, "phones": ""}])
    with pytest.raises(CompressLibError, match=r"phone-recognition utterance needs phones"):
        read_split(tmp_path, "pr-dev")


def test_manifest_bad_duration_and_duplicate_id(tmp_path):
    _manifest(tmp_path, [{**GOOD, "duration": "long"}])
    with pytest.raises(CompressLibError, match=r"duration 'long' is not a positive number"):
        read_split(tmp_path, "pr-dev")
    _manifest(tmp_path, [GOOD, GOOD])
    with pytest.raises(CompressLibError, match=r"pr-dev.jsonl:2: utterance id 'u1' appears twice"):
        read_split(tmp_path, "pr-dev")


def test_manifest_good_rows(tmp_path):
    _manifest(tmp_path, [GOOD, "\n", {**GOOD, "id": "u2", "path": str(tmp_path / "a.wav"), "phones": "ah"}])
    utts = read_split(tmp_path, "pr-dev")
    assert [u.id for u in utts] == ["u1", "u2"]
    assert utts[0].path == (tmp_path / "a.wav").resolve() and utts[1].path == tmp_path / "a.wav"
    assert utts[0].phones == ["hh", "ah", "l", "ow"] and utts[0].duration == 0.5


def test_unknown_split_name(tmp_path):
    with pytest.raises(CompressLibError, match=r"unknown split 'train'; valid: pretrain, pr-train"):
        read_split(tmp_path, "train")
