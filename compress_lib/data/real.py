"""Real corpora behind the same dataset interface: LibriSpeech and VoxCeleb1 -> `<split>.jsonl` manifests.

Users who have the paper's corpora on disk convert them once; every later step then reads them exactly like
the stand-in corpus (`read_split`, `load_features`). Manifests point at the original files (absolute paths);
nothing is copied.

LibriSpeech (SUPERB's phone recognition; flac read through soundfile)::

    ROOT/[LibriSpeech/]<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    ROOT/[LibriSpeech/]<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   ("<id> WORDS ...")

    pretrain  <- the train-* subsets present (train-clean-100, train-clean-360, train-other-500: 960 h)
    pr-train  <- train-clean-100      pr-dev <- dev-clean      pr-test <- test-clean

Phones come from a word-to-phone lexicon the user points to, as SUPERB does (LibriSpeech's
`librispeech-lexicon.txt`: `WORD  AH0 B AW1 T`); stress digits are dropped, giving the 39 CMU phones.

VoxCeleb1 (SUPERB's speaker identification; 16 kHz wav)::

    ROOT/wav/<id1xxxx>/<video>/<nnnnn>.wav   (or ROOT/<part>/wav/..., e.g. dev/wav and test/wav)
    iden_split.txt: "<1|2|3> id10001/1zcIwhmdeo4/00001.wav"   1 -> sid-train, 2 -> sid-dev, 3 -> sid-test
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from compress_lib.data.manifest import (
    CORPUS_FORMAT,
    CORPUS_VERSION,
    SPLITS,
    Utterance,
    prepare_out_dir,
    split_summary,
    write_split,
)
from compress_lib.data.phones import read_lexicon, words_to_phones
from compress_lib.errors import CompressLibError
from compress_lib.files import write_text_atomic

LIBRISPEECH_PR_SUBSETS = {"pr-train": "train-clean-100", "pr-dev": "dev-clean", "pr-test": "test-clean"}
LIBRISPEECH_PRETRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
VOXCELEB_SPLIT_CODES = {"1": "sid-train", "2": "sid-dev", "3": "sid-test"}


def audio_duration(path: Path) -> float:
    """Seconds of audio from the file header; a clear error for a missing or unreadable file."""
    if not path.is_file():
        raise CompressLibError(f"audio file {path} does not exist; is the corpus fully extracted?")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError):
        raise CompressLibError(f"audio file {path} is not readable audio; re-download or re-extract it") from None
    if info.frames <= 0:
        raise CompressLibError(f"audio file {path} holds no samples; re-download or re-extract it")
    return info.frames / info.samplerate


def librispeech_root(root: str | os.PathLike) -> Path:
    """The folder holding the subset folders: ROOT itself or ROOT/LibriSpeech."""
    root = Path(root)
    if not root.is_dir():
        raise CompressLibError(f"LibriSpeech folder {root} does not exist; pass the folder you extracted it into")
    for candidate in (root, root / "LibriSpeech"):
        if any((candidate / s).is_dir() for s in (*LIBRISPEECH_PRETRAIN_SUBSETS, *LIBRISPEECH_PR_SUBSETS.values())):
            return candidate
    raise CompressLibError(
        f"{root} holds no LibriSpeech subset folder (train-clean-100, dev-clean, test-clean, ...); pass the "
        "folder that contains them (or their parent LibriSpeech/)"
    )


def read_librispeech_subset(subset_dir: Path, lexicon: dict[str, list[str]], progress: bool = True) -> list[Utterance]:
    """Every utterance of one subset folder, sorted by id, with lexicon phones."""
    transcripts = sorted(subset_dir.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise CompressLibError(
            f"{subset_dir} holds no <speaker>/<chapter>/*.trans.txt transcripts; is it a LibriSpeech subset folder?"
        )
    utterances = []
    for trans in tqdm(transcripts, desc=subset_dir.name, unit="chapter", disable=not progress):
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, words = line.strip().partition(" ")
            audio = trans.parent / f"{utt_id}.flac"
            where = f"{trans}:{number}"
            if not audio.is_file():
                raise CompressLibError(f"{where}: {audio.name} is missing; re-extract the subset {subset_dir.name}")
            utterances.append(
                Utterance(
                    id=utt_id,
                    path=audio.resolve(),
                    duration=audio_duration(audio),
                    speaker=utt_id.split("-")[0],
                    phones=words_to_phones(words, lexicon, where),
                    text=words,
                )
            )
    return sorted(utterances, key=lambda u: u.id)


def convert_librispeech(
    root: str | os.PathLike,
    lexicon_path: str | os.PathLike,
    pretrain_subsets: tuple[str, ...] = LIBRISPEECH_PRETRAIN_SUBSETS,
    progress: bool = True,
) -> dict[str, list[Utterance]]:
    """LibriSpeech -> {split: utterances} for pretrain and the three PR splits."""
    base = librispeech_root(root)
    lexicon = read_lexicon(lexicon_path)
    missing = [s for s in LIBRISPEECH_PR_SUBSETS.values() if not (base / s).is_dir()]
    if missing:
        raise CompressLibError(
            f"{base} lacks the subset folder(s) {', '.join(missing)}; phone recognition needs train-clean-100, "
            "dev-clean and test-clean: extract them there"
        )
    present = [s for s in pretrain_subsets if (base / s).is_dir()]
    if not present:
        raise CompressLibError(f"{base} holds none of the pretraining subsets {', '.join(pretrain_subsets)}")
    subsets = sorted({*present, *LIBRISPEECH_PR_SUBSETS.values()})
    read = {s: read_librispeech_subset(base / s, lexicon, progress) for s in subsets}
    splits = {"pretrain": [u for s in present for u in read[s]]}
    splits.update({split: read[subset] for split, subset in LIBRISPEECH_PR_SUBSETS.items()})
    return splits


def voxceleb_audio_bases(root: Path) -> list[Path]:
    """Folders that may hold `<speaker>/<video>/<n>.wav`: ROOT/wav and ROOT/*/wav (dev/wav, test/wav)."""
    return [p for p in [root / "wav", *sorted(root.glob("*/wav"))] if p.is_dir()]


def convert_voxceleb(
    root: str | os.PathLike, split_file: str | os.PathLike | None = None, progress: bool = True
) -> dict[str, list[Utterance]]:
    """VoxCeleb1 + the standard identification split file -> {sid-train, sid-dev, sid-test}."""
    root = Path(root)
    if not root.is_dir():
        raise CompressLibError(f"VoxCeleb1 folder {root} does not exist; pass the folder you extracted it into")
    split_file = Path(split_file) if split_file else root / "iden_split.txt"
    if not split_file.is_file():
        raise CompressLibError(
            f"identification split file {split_file} does not exist; download iden_split.txt from the VoxCeleb1 "
            "page into the VoxCeleb1 folder or pass --voxceleb-split FILE"
        )
    bases = voxceleb_audio_bases(root)
    if not bases:
        raise CompressLibError(f"{root} has no wav/ folder (nor dev/wav, test/wav); pass the VoxCeleb1 folder")
    splits: dict[str, list[Utterance]] = {s: [] for s in VOXCELEB_SPLIT_CODES.values()}
    lines = split_file.read_text().splitlines()
    for number, line in enumerate(tqdm(lines, desc="VoxCeleb1", unit="utt", disable=not progress), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] not in VOXCELEB_SPLIT_CODES:
            raise CompressLibError(
                f"{split_file}:{number}: expected `<1|2|3> idXXXXX/<video>/<n>.wav`, found {line.strip()!r}"
            )
        rel = parts[1]
        audio = next((b / rel for b in bases if (b / rel).is_file()), None)
        if audio is None:
            raise CompressLibError(
                f"{split_file}:{number}: {rel} is in none of {', '.join(map(str, bases))}; extract VoxCeleb1 fully"
            )
        splits[VOXCELEB_SPLIT_CODES[parts[0]]].append(
            Utterance(
                id=rel.removesuffix(".wav"),
                path=audio.resolve(),
                duration=audio_duration(audio),
                speaker=rel.split("/")[0],
                phones=[],
                text="",
            )
        )
    empty = [s for s, utts in splits.items() if not utts]
    if empty:
        raise CompressLibError(f"{split_file} assigns no utterance to {', '.join(empty)}; is it iden_split.txt?")
    return splits


def convert_corpora(
    out_dir: str | os.PathLike,
    librispeech: str | os.PathLike | None = None,
    lexicon: str | os.PathLike | None = None,
    voxceleb: str | os.PathLike | None = None,
    voxceleb_split: str | os.PathLike | None = None,
    pretrain_subsets: tuple[str, ...] = LIBRISPEECH_PRETRAIN_SUBSETS,
    progress: bool = True,
) -> dict:
    """Write the manifests of LibriSpeech and/or VoxCeleb1 into `out_dir`; returns its corpus.json contents."""
    if librispeech is None and voxceleb is None:
        raise CompressLibError("give --from-librispeech ROOT --lexicon FILE and/or --from-voxceleb ROOT")
    if librispeech is not None and lexicon is None:
        raise CompressLibError("--from-librispeech needs --lexicon FILE (a `WORD PH1 PH2 ...` lexicon)")
    splits: dict[str, list[Utterance]] = {}
    sources: dict[str, dict] = {}
    if librispeech is not None:
        splits.update(convert_librispeech(librispeech, lexicon, pretrain_subsets, progress))
        sources["librispeech"] = {"root": str(Path(librispeech).resolve()), "lexicon": str(Path(lexicon).resolve())}
    if voxceleb is not None:
        splits.update(convert_voxceleb(voxceleb, voxceleb_split, progress))
        sources["voxceleb1"] = {"root": str(Path(voxceleb).resolve())}
    out = prepare_out_dir(out_dir)
    for split, utts in splits.items():
        write_split(out, split, utts)
    info = {
        "format": CORPUS_FORMAT,
        "version": CORPUS_VERSION,
        "kind": "converted",
        "status": "complete",
        "sources": sources,
        "splits": {split: split_summary(splits[split]) for split in SPLITS if split in splits},
    }
    write_text_atomic(out / "corpus.json", json.dumps(info, indent=1) + "\n")
    return info
