"""MelHuBERT's input features: Kaldi log-Mel filterbanks, normalised, cached on disk.

    wave (N,) in [-1, 1] at 16 kHz
      -> log_mel      Kaldi fbank of wave * 2**15: 40 bins, 25 ms Hamming window, 10 ms shift     (T, 40)
      -> normalise    (x - mean) / std, mean and std over every frame of the `pretrain` split    (T, 40)
      -> stack_pairs  20 ms models only: frames (2t, 2t+1) side by side                          (ceil(T/2), 80)

The raw log-Mel of every split is computed once and cached in `DIR/.cache/logmel.<split>.<key>.pt`, where the
key hashes the manifest, the feature settings and a fingerprint of each audio file's content (its size and a
SHA-256 of its first and last 64 KiB, `audio_fingerprints`): regenerating or replacing the audio, even by a file
of the same size and modification time, or changing a setting recomputes; anything else (touching, copying the
files in place) reuses. Fingerprints are recorded in `DIR/.cache/audio_fingerprints.json` with each file's
status (size, modification and status-change times, inode), so a file is read again only when its status
changed: a key costs one `stat` per file. Normalising and stacking are cheap and done on load. Temporary files
a killed computation left in the cache are deleted once nobody has written to them for ten minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torchaudio.compliance import kaldi
from tqdm import tqdm

from compress_lib.checkpoint import atomic_torch_save, safe_torch_load
from compress_lib.config import FRAME_MS_CHOICES, MEL_BINS
from compress_lib.data.audio import SAMPLE_RATE, load_audio
from compress_lib.data.manifest import Utterance, check_data_dir, manifest_path, read_split
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.files import write_text_atomic
from compress_lib.locking import remove_stale_temp_files
from compress_lib.threads import num_threads

# Kaldi `compute-fbank-feats` options of MelHuBERT (everything else at Kaldi's defaults: povey -> hamming here,
# pre-emphasis 0.97, DC removal, snip_edges, power spectrum). Part of the cache key.
FBANK_OPTIONS = dict(
    num_mel_bins=MEL_BINS,
    frame_length=25.0,  # ms
    frame_shift=10.0,  # ms
    window_type="hamming",
    dither=0.0,  # deterministic
    sample_frequency=float(SAMPLE_RATE),
)
WAVE_SCALE = 2.0**15  # Kaldi reads 16-bit integers
FEATURE_VERSION = 1  # bump when the computation changes in a way the options above do not show
FINGERPRINT_BYTES = 64 * 1024  # hashed from each end of an audio file (a file up to twice this: all of it)
FINGERPRINTS_FILE = "audio_fingerprints.json"  # in DIR/.cache: the fingerprint of each file, with its status
MIN_SAMPLES = int(SAMPLE_RATE * FBANK_OPTIONS["frame_length"] / 1000)  # one window: 400 samples


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    """Kaldi log-Mel filterbank of a 16 kHz waveform in [-1, 1]: (N,) -> (T, 40), T = 1 + (N - 400) // 160."""
    if wave.dim() != 1:
        raise ValueError(f"expected a mono waveform of shape (num_samples,), found {tuple(wave.shape)}")
    if wave.numel() < MIN_SAMPLES:
        raise CompressLibError(f"a waveform of {wave.numel()} samples is shorter than one 25 ms window (400)")
    return kaldi.fbank(wave.float()[None] * WAVE_SCALE, **FBANK_OPTIONS)  # (T, 40)


def stack_pairs(feats: torch.Tensor) -> torch.Tensor:
    """10 ms -> 20 ms frames: (T, F) -> (ceil(T/2), 2F), frame t = [x_2t, x_2t+1], an odd last frame zero-padded."""
    T, F = feats.shape
    if T % 2:
        feats = torch.cat([feats, feats.new_zeros(1, F)])
    return feats.reshape(-1, 2 * F)


@dataclass
class FeatureSet:
    utterances: list[Utterance]
    feats: list[torch.Tensor]  # each (T_i, 40) at 10 ms or (T_i, 80) at 20 ms, float32, normalised
    frame_ms: int

    @property
    def feat_dim(self) -> int:
        return MEL_BINS * (self.frame_ms // 10)

    @property
    def lengths(self) -> list[int]:
        return [f.shape[0] for f in self.feats]

    def __len__(self) -> int:
        return len(self.feats)


# -- raw log-Mel cache -------------------------------------------------------------------------------


def cache_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / ".cache"


def content_fingerprint(path: Path, size: int) -> str:
    """`<size>:<sha256>` of a file's first and last FINGERPRINT_BYTES (all of it when it is at most twice that)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            h.update(f.read(FINGERPRINT_BYTES))
    return f"{size}:{h.hexdigest()}"


def file_status(path: Path) -> list[int]:
    """[size, mtime, ctime, inode]: any write to the file, a replacement (even with its modification time set
    back: that sets the ctime) changes it; a status equal to a recorded one means an unchanged file."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def audio_fingerprints(data_dir: str | os.PathLike, paths: list[Path]) -> list[str]:
    """`content_fingerprint` of each audio file. A file whose `file_status` is the one recorded in
    DIR/.cache/audio_fingerprints.json is not read again; the others are fingerprinted and recorded."""
    memo_path = cache_dir(data_dir) / FINGERPRINTS_FILE
    try:
        memo = json.loads(memo_path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        memo = {}
    fingerprints, changed = [], False
    for path in paths:
        status = file_status(path)
        known = memo.get(str(path))
        if not (isinstance(known, list) and known[:4] == status):
            known = memo[str(path)] = [*status, content_fingerprint(path, status[0])]
            changed = True
        fingerprints.append(known[4])
    if changed:
        write_text_atomic(memo_path, json.dumps({"version": 1, "files": memo}))
    return fingerprints


def audio_key(data_dir: str | os.PathLike, split: str, utterances: list[Utterance] | None = None) -> str:
    """Changes when the manifest, the content of any audio file (`audio_fingerprints`) or a feature setting
    changes."""
    utterances = utterances if utterances is not None else read_split(data_dir, split)
    h = hashlib.sha256()
    h.update(json.dumps({"fbank": FBANK_OPTIONS, "scale": WAVE_SCALE, "version": FEATURE_VERSION}).encode())
    h.update(manifest_path(data_dir, split).read_bytes())
    for utt, fingerprint in zip(utterances, audio_fingerprints(data_dir, [u.path for u in utterances])):
        h.update(f"{utt.path}\0{fingerprint}\n".encode())
    return h.hexdigest()[:20]


def raw_log_mel(data_dir: str | os.PathLike, split: str, progress: bool = True):
    """(utterances, list of unnormalised (T_i, 40) log-Mel, cache key), from the cache or computed and cached."""
    data_dir = check_data_dir(data_dir)
    utterances = read_split(data_dir, split)
    key = audio_key(data_dir, split, utterances)
    path = cache_dir(data_dir) / f"logmel.{split}.{key}.pt"
    if path.is_file():
        cached = safe_torch_load(path, "feature cache")
        if cached.get("ids") == [u.id for u in utterances]:
            return utterances, list(torch.split(cached["feats"], cached["lengths"])), key
    remove_stale_temp_files(cache_dir(data_dir))  # left by a killed computation (shared folder: only old ones)
    feats = []
    with num_threads(1):  # one utterance's fbank is ~100x too small to share between threads
        for utt in tqdm(utterances, desc=f"log-Mel {split}", unit="utt", disable=not progress):
            wave = load_audio(utt.path)
            if wave.numel() < MIN_SAMPLES:
                raise CompressLibError(
                    f"audio file {utt.path} lasts {wave.numel() / SAMPLE_RATE * 1000:.1f} ms, shorter than one "
                    "25 ms frame; remove its row from the manifest"
                )
            feats.append(log_mel(wave))
    lengths = [f.shape[0] for f in feats]
    for stale in cache_dir(data_dir).glob(f"logmel.{split}.*.pt"):
        stale.unlink(missing_ok=True)
    atomic_torch_save({"ids": [u.id for u in utterances], "lengths": lengths, "feats": torch.cat(feats)}, path)
    return utterances, feats, key


def feature_stats(data_dir: str | os.PathLike, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (40,) of the raw log-Mel over every frame of the `pretrain` split (the training split)."""
    data_dir = check_data_dir(data_dir)
    key = audio_key(data_dir, "pretrain")
    path = cache_dir(data_dir) / f"stats.pretrain.{key}.pt"
    if path.is_file():
        cached = safe_torch_load(path, "feature statistics")
        return cached["mean"], cached["std"]
    _, feats, _ = raw_log_mel(data_dir, "pretrain", progress)
    frames = torch.cat(feats).double()  # (N, 40)
    mean, std = frames.mean(0).float(), frames.std(0).clamp_min(1e-5).float()
    for stale in cache_dir(data_dir).glob("stats.pretrain.*.pt"):
        stale.unlink(missing_ok=True)
    atomic_torch_save({"mean": mean, "std": std}, path)
    return mean, std


def load_features(data_dir: str | os.PathLike, split: str, frame_ms: int, progress: bool = True) -> FeatureSet:
    """Normalised log-Mel of every utterance of a split: (T, 40) at 10 ms, stacked (ceil(T/2), 80) at 20 ms."""
    check_choice(frame_ms, FRAME_MS_CHOICES, "frame rate (ms)")
    mean, std = feature_stats(data_dir, progress)
    utterances, raw, _ = raw_log_mel(data_dir, split, progress)
    feats = [(f - mean) / std for f in raw]
    if frame_ms == 20:
        feats = [stack_pairs(f) for f in feats]
    return FeatureSet(utterances=utterances, feats=feats, frame_ms=frame_ms)


def features_key(data_dir: str | os.PathLike, split: str) -> str:
    """Identifies a split's normalised features: its audio key and the statistics' (pretrain) audio key."""
    return hashlib.sha256(f"{audio_key(data_dir, split)}:{audio_key(data_dir, 'pretrain')}".encode()).hexdigest()[:20]
