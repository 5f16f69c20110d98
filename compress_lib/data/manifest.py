"""The dataset interface: one JSON-lines manifest per split.

A corpus folder `DIR` holds `DIR/<split>.jsonl` for each split it provides, one JSON object per utterance:

    {"id": "pr-test-0003", "path": "wav/pr-test/es-us-041/pr-test-0003.wav", "duration": 5.123,
     "speaker": "es-us-041", "phones": "dh ah k ae t ...", "text": "The cat ..."}

`path` is relative to `DIR` (an absolute path is allowed: converted real corpora point into the user's
LibriSpeech / VoxCeleb1 folders); `phones` are space-separated phones of the 39-phone CMU inventory (`PHONES`),
required in the phone-recognition splits, may be empty elsewhere (VoxCeleb1 has no transcripts). The generated
stand-in corpus and the real-corpus converters write the same format, so every later step reads any of them
through `read_split`.

Splits (`SPLITS`): `pretrain` (self-supervised pretraining, the training split whose log-Mel mean/std normalise
every feature), `pr-train` / `pr-dev` / `pr-test` (phone recognition; dev and test speakers held out),
`sid-train` / `sid-dev` / `sid-test` (speaker identification; the same speakers in all three).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from compress_lib.data.phones import PHONE_SET, PHONES
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.files import write_text_atomic

SPLITS = ("pretrain", "pr-train", "pr-dev", "pr-test", "sid-train", "sid-dev", "sid-test")
PR_SPLITS = ("pr-train", "pr-dev", "pr-test")
SID_SPLITS = ("sid-train", "sid-dev", "sid-test")
REQUIRED_KEYS = ("path", "duration", "speaker", "phones", "text")
CORPUS_FORMAT = "compress_lib-corpus"  # corpus.json's "format"
CORPUS_VERSION = 1

__all__ = ["PHONES", "PR_SPLITS", "SID_SPLITS", "SPLITS", "Utterance", "read_split", "write_split"]


@dataclass
class Utterance:
    id: str  # unique within the corpus
    path: Path  # absolute path of the audio file
    duration: float  # seconds
    speaker: str
    phones: list[str]  # CMU phones, may be empty outside the PR splits
    text: str

    def to_row(self, data_dir: str | os.PathLike) -> dict:
        """The manifest row: `path` relative to `data_dir` when inside it, absolute otherwise."""
        try:
            path = self.path.relative_to(Path(data_dir).resolve()).as_posix()
        except ValueError:
            path = str(self.path)
        return {
            "id": self.id,
            "path": path,
            "duration": self.duration,
            "speaker": self.speaker,
            "phones": " ".join(self.phones),
            "text": self.text,
        }


def manifest_path(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / f"{check_choice(split, SPLITS, 'split')}.jsonl"


def check_data_dir(data_dir: str | os.PathLike) -> Path:
    """The resolved corpus folder, or a clear error if it is missing."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CompressLibError(
            f"corpus folder {data_dir} does not exist; generate it with `compress-lib corpus --out {data_dir}` "
            "(or convert LibriSpeech / VoxCeleb1 into it, see `compress-lib corpus --help`)"
        )
    return data_dir.resolve()


def available_splits(data_dir: str | os.PathLike) -> list[str]:
    data_dir = check_data_dir(data_dir)
    return [s for s in SPLITS if (data_dir / f"{s}.jsonl").is_file()]


def read_split(data_dir: str | os.PathLike, split: str) -> list[Utterance]:
    """Read and validate `data_dir/<split>.jsonl`; every bad row is an error naming the line and the fix."""
    data_dir = check_data_dir(data_dir)
    path = manifest_path(data_dir, split)
    if not path.is_file():
        have = ", ".join(available_splits(data_dir)) or "none"
        raise CompressLibError(
            f"{path} does not exist (splits in {data_dir}: {have}); generate the corpus with "
            f"`compress-lib corpus --out {data_dir}` or convert a real corpus providing `{split}`"
        )
    utterances: list[Utterance] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            utt = _parse_row(line, data_dir, where=f"{path}:{number}", need_phones=split in PR_SPLITS)
            if utt.id in seen:
                raise CompressLibError(f"{path}:{number}: utterance id {utt.id!r} appears twice; fix the manifest")
            seen.add(utt.id)
            utterances.append(utt)
    if not utterances:
        raise CompressLibError(f"{path} lists no utterances; regenerate the corpus (a larger --scale?)")
    return utterances


def _parse_row(line: str, data_dir: Path, where: str, need_phones: bool) -> Utterance:
    fix = "regenerate the corpus or fix the manifest row"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CompressLibError(f"{where}: not a JSON object ({exc.msg}); {fix}") from None
    if not isinstance(row, dict):
        raise CompressLibError(f"{where}: not a JSON object; {fix}")
    missing = [k for k in REQUIRED_KEYS if k not in row]
    if missing:
        raise CompressLibError(f"{where}: missing key(s) {', '.join(missing)}; {fix}")
    audio = Path(str(row["path"]))
    audio = audio if audio.is_absolute() else data_dir / audio
    if not audio.is_file():
        raise CompressLibError(f"{where}: audio file {audio} does not exist; {fix}")
    try:
        duration = float(row["duration"])
    except (TypeError, ValueError):
        duration = -1.0
    if not duration > 0:
        raise CompressLibError(f"{where}: duration {row['duration']!r} is not a positive number of seconds; {fix}")
    phones = str(row["phones"]).split()
    unknown = sorted(set(phones) - PHONE_SET)
    if unknown:
        raise CompressLibError(
            f"{where}: phones {unknown} are not in the 39-phone CMU inventory (lower-case, no stress digits); {fix}"
        )
    if need_phones and not phones:
        raise CompressLibError(f"{where}: a phone-recognition utterance needs phones, found none; {fix}")
    utt_id = str(row.get("id") or Path(str(row["path"])).with_suffix("").as_posix())
    return Utterance(
        id=utt_id, path=audio, duration=duration, speaker=str(row["speaker"]), phones=phones, text=str(row["text"])
    )


def write_split(data_dir: str | os.PathLike, split: str, utterances: list[Utterance]) -> Path:
    """Write a manifest atomically, rows in the given order, byte-identical for identical input."""
    path = manifest_path(data_dir, split)
    lines = [json.dumps(u.to_row(data_dir), ensure_ascii=False, sort_keys=True) + "\n" for u in utterances]
    write_text_atomic(path, "".join(lines))
    return path




def split_summary(utterances: list[Utterance]) -> dict:
    return {
        "utterances": len(utterances),
        "hours": round(sum(u.duration for u in utterances) / 3600, 4),
        "speakers": len({u.speaker for u in utterances}),
    }


def prepare_out_dir(out: str | os.PathLike) -> Path:
    """A new or empty folder, or one holding a corpus of ours (whose manifests, audio and caches are removed)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CompressLibError(f"--out {out} is a file; name a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "corpus.json").is_file():
            raise CompressLibError(f"--out {out} is not empty and holds no corpus.json; name an empty or new folder")
        for name in ("wav", ".cache"):
            shutil.rmtree(out / name, ignore_errors=True)
        for manifest in out.glob("*.jsonl"):
            manifest.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out
