"""Real corpora through the same interface: LibriSpeech and VoxCeleb1 layouts -> manifests -> features."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from compress_lib.cli import main
from compress_lib.data.features import load_features
from compress_lib.data.manifest import read_split
from compress_lib.data.phones import espeak_to_cmu
from compress_lib.data.real import convert_corpora
from compress_lib.errors import CompressLibError

LEXICON = "HELLO HH AH0 L OW1\nWORLD W ER1 L D\nGOOD G UH1 D\nDAY D EY1\nA AH0\n"


def _noise(seconds, seed):
    return np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * 16000))


def make_librispeech(root: Path, subsets=("train-clean-100", "dev-clean", "test-clean")) -> Path:
    """A LibriSpeech-layout folder: <subset>/<speaker>/<chapter>/<id>.flac + <speaker>-<chapter>.trans.txt."""
    texts = ["HELLO WORLD", "GOOD DAY", "A GOOD WORLD"]
    for k, subset in enumerate(subsets):
        for speaker in (100 + 10 * k, 101 + 10 * k):
            chapter = root / "LibriSpeech" / subset / str(speaker) / "7"
            chapter.mkdir(parents=True)
            lines = []
            for n, text in enumerate(texts):
                utt = f"{speaker}-7-{n:04d}"
                sf.write(chapter / f"{utt}.flac", _noise(0.5 + 0.25 * n, speaker + n), 16000)
                lines.append(f"{utt} {text}")
            (chapter / f"{speaker}-7.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "lexicon.txt").write_text(LEXICON)
    return root


def make_voxceleb(root: Path, split_name="iden_split.txt") -> Path:
    """A VoxCeleb1-layout folder: wav/<id>/<video>/<n>.wav and the identification split file."""
    lines = []
    for s, speaker in enumerate(("id10001", "id10002", "id10003")):
        for n in range(4):
            rel = f"{speaker}/vid{n % 2}/{n:05d}.wav"
            (root / "wav" / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / "wav" / rel, _noise(0.6, 10 * s + n), 16000, subtype="PCM_16")
            lines.append(f"{[1, 1, 2, 3][n]} {rel}")
    (root / split_name).write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_and_voxceleb_convert_to_the_split_interface(tmp_path):
    ls = make_librispeech(tmp_path / "ls")
    vox = make_voxceleb(tmp_path / "vox")
    out = tmp_path / "real"
    code = main(["corpus", "--out", str(out), "--from-librispeech", str(ls), "--lexicon", str(ls / "lexicon.txt"),
                 "--from-voxceleb", str(vox), "--quiet"])  # fmt: skip
    assert code == 0
    pr_train = read_split(out, "pr-train")
    assert [u.id for u in pr_train][:2] == ["100-7-0000", "100-7-0001"]
    assert pr_train[0].phones == "hh ah l ow w er l d".split() and pr_train[0].speaker == "100"
    assert pr_train[1].duration == 0.75 and pr_train[0].path.suffix == ".flac"
    assert {u.speaker for u in read_split(out, "pr-test")} == {"120", "121"}
    assert len(read_split(out, "pretrain")) == 6  # the train-* subsets present: train-clean-100 only
    sid = {s: read_split(out, s) for s in ("sid-train", "sid-dev", "sid-test")}
    assert [len(v) for v in sid.values()] == [6, 3, 3]
    assert sid["sid-test"][0].speaker == "id10001" and sid["sid-test"][0].phones == []
    fs = load_features(out, "sid-dev", 20, progress=False)  # normalised with the LibriSpeech pretrain stats
    assert fs.lengths == [29, 29, 29]  # 0.6 s: 58 frames of 10 ms and all(torch.isfinite(f).all() for f in fs.feats)


def test_voxceleb_dev_test_layout_and_split_file_option(tmp_path):
    vox = make_voxceleb(tmp_path / "vox", split_name="my_split.txt")
    (vox / "wav").rename(tmp_path / "wav")
    (vox / "dev").mkdir()
    (tmp_path / "wav").rename(vox / "dev" / "wav")
    info = convert_corpora(tmp_path / "out", voxceleb=vox, voxceleb_split=vox / "my_split.txt", progress=False)
    assert info["splits"]["sid-train"] == {"utterances": 6, "hours": 0.001, "speakers": 3}
    assert "pretrain" not in info["splits"]
    with pytest.raises(CompressLibError, match=r"pretrain.jsonl does not exist \(splits in .*: sid-train, sid-dev"):
        load_features(tmp_path / "out", "sid-train", 10)


def test_librispeech_errors(tmp_path):
    ls = make_librispeech(tmp_path / "ls", subsets=("train-clean-100", "dev-clean"))
    with pytest.raises(CompressLibError, match=r"lacks the subset folder\(s\) test-clean"):
        convert_corpora(tmp_path / "o1", librispeech=ls, lexicon=ls / "lexicon.txt", progress=False)
    ls = make_librispeech(tmp_path / "ls2")
    (ls / "lexicon.txt").write_text(LEXICON.replace("GOOD G UH1 D\n", ""))
    with pytest.raises(CompressLibError, match=r"trans.txt:2: word 'GOOD' is not in the lexicon"):
        convert_corpora(tmp_path / "o2", librispeech=ls, lexicon=ls / "lexicon.txt", progress=False)
    with pytest.raises(CompressLibError, match=r"holds no LibriSpeech subset folder"):
        convert_corpora(tmp_path / "o3", librispeech=tmp_path, lexicon=ls / "lexicon.txt", progress=False)
    with pytest.raises(CompressLibError, match=r"--from-librispeech needs --lexicon"):
        convert_corpora(tmp_path / "o4", librispeech=ls, progress=False)
    (ls / "lexicon.txt").write_text(LEXICON)
    sorted(ls.rglob("*.flac"))[0].unlink()
    missing = r"110-7.trans.txt:1: 110-7-0000.flac is missing; re-extract the subset dev-clean"
    with pytest.raises(CompressLibError, match=missing):
        convert_corpora(tmp_path / "o5", librispeech=ls, lexicon=ls / "lexicon.txt", progress=False)


def test_voxceleb_errors(tmp_path):
    vox = make_voxceleb(tmp_path / "vox")
    (vox / "iden_split.txt").rename(vox / "elsewhere.txt")
    with pytest.raises(CompressLibError, match=r"iden_split.txt does not exist; download iden_split.txt"):
        convert_corpora(tmp_path / "o1", voxceleb=vox, progress=False)
    (vox / "iden_split.txt").write_text("1 id10001/vid0/00000.wav\n4 id10001/vid0/00000.wav\n")
    with pytest.raises(CompressLibError, match=r"iden_split.txt:2: expected `<1\|2\|3> idXXXXX"):
        convert_corpora(tmp_path / "o2", voxceleb=vox, progress=False)
    (vox / "iden_split.txt").write_text("1 id10001/vid0/99999.wav\n")
    with pytest.raises(CompressLibError, match=r"iden_split.txt:1: id10001/vid0/99999.wav is in none of"):
        convert_corpora(tmp_path / "o3", voxceleb=vox, progress=False)


POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data/librivox")


def espeak_lexicon(words) -> str:
    """A lexicon for `words` from espeak-ng's en-us pronunciations (CMU phones, as `WORD PH ...` lines)."""
    lines = []
    for word in sorted(words):
        out = subprocess.run(["espeak-ng", "-q", "-v", "en-us", "-x", "--sep= ", word.lower()],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        lines.append(f"{word} " + " ".join(p.upper() for p in espeak_to_cmu(out)))
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(not POCKETSPHINX.is_dir(), reason="Debian's pocketsphinx-testdata is not installed")
def test_librispeech_loader_on_real_recorded_speech(tmp_path):
    """Five real LibriVox recordings (pocketsphinx-testdata) in the LibriSpeech layout, as flac."""
    transcripts = {}
    for line in (POCKETSPHINX / "transcription").read_text().splitlines():
        match = re.fullmatch(r"<s> (.*) </s> \((\S+)\)", line.strip())
        transcripts[match.group(2)] = match.group(1).upper()
    root = tmp_path / "LibriSpeech"
    subsets = ["train-clean-100", "train-clean-100", "train-clean-100", "dev-clean", "test-clean"]
    for n, (name, subset) in enumerate(zip(sorted(transcripts), subsets)):
        chapter = root / subset / "8" / "1"
        chapter.mkdir(parents=True, exist_ok=True)
        samples, rate = sf.read(POCKETSPHINX / f"{name}.wav")
        sf.write(chapter / f"8-1-{n:04d}.flac", samples, rate)
        with open(chapter / "8-1.trans.txt", "a") as f:
            f.write(f"8-1-{n:04d} {transcripts[name]}\n")
    words = {w for t in transcripts.values() for w in t.split()}
    (tmp_path / "lexicon.txt").write_text(espeak_lexicon(words))
    convert_corpora(tmp_path / "out", librispeech=root, lexicon=tmp_path / "lexicon.txt", progress=False)
    utts = read_split(tmp_path / "out", "pr-train")
    assert len(utts) == 3 and abs(sum(u.duration for u in utts) - (7.1 + 2.99 + 5.3)) < 0.01
    assert utts[1].text == "HE WAS NOT AN ILL DISPOSED YOUNG MAN" and utts[1].phones[:3] == ["hh", "iy", "w"]
    fs = load_features(tmp_path / "out", "pr-test", 10, progress=False)
    assert fs.lengths == [1 + (int(3.29 * 16000) - 400) // 160]
    frames = fs.feats[0]
    assert torch.isfinite(frames).all() and frames.std() > 0.5  # real speech, normalised by 3 real utterances
