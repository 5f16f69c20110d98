"""Reading and writing audio: 16 kHz mono, checked.

`load_audio` is the one way the study reads a waveform (wav or flac through soundfile; torchaudio's own
loader needs FFmpeg here). Every way a file can be wrong gets one clear error naming the file and the fix:

| input | handling |
|---|---|
| missing file | error: regenerate the corpus or fix the manifest row |
| empty (0 bytes), non-audio or corrupt file | error: regenerate / re-download it |
| truncated wav (header promises more samples than the file holds), truncated flac | error |
| stereo / multi-channel | error: mix it down to mono first (the study never guesses which channel is speech) |
| a sample rate other than 16 kHz | resampled to 16 kHz (torchaudio's band-limited sinc), with one warning per rate |
| no samples at all | error |
| NaN or infinite samples (a float wav) | error: regenerate / re-download it |

`write_wav` turns libsndfile's vague "System error" (a full disk, a folder without write permission) into the
`OSError` it stands for, naming the file, so the command line reports it in one line.
"""

from __future__ import annotations

import errno
import os
import warnings
import wave
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from compress_lib.config import SAMPLE_RATE
from compress_lib.errors import CompressLibError

_warned_rates: set[int] = set()


def load_audio(path: str | os.PathLike) -> torch.Tensor:
    """Read a mono audio file as float32 samples in [-1, 1] at 16 kHz: shape (num_samples,)."""
    path = Path(path)
    samples, rate = read_checked(path)
    wave_16k = torch.from_numpy(samples)
    if rate != SAMPLE_RATE:
        if rate not in _warned_rates:
            _warned_rates.add(rate)
            warnings.warn(
                f"{path} is sampled at {rate} Hz; resampling to {SAMPLE_RATE} Hz (files at {rate} Hz are "
                "resampled on every read: convert them once to 16 kHz to save the time)",
                stacklevel=2,
            )
        import torchaudio.functional as AF

        wave_16k = AF.resample(wave_16k, rate, SAMPLE_RATE)
    return wave_16k.contiguous()


def read_checked(path: Path) -> tuple[np.ndarray, int]:
    """soundfile.read with the checks of the module docstring: returns (float32 (N,), sample rate)."""
    if not path.exists():
        raise CompressLibError(
            f"audio file {path} does not exist; regenerate the corpus (`compress-lib corpus --out DIR`) or fix "
            "the manifest row that names it"
        )
    if path.is_dir() or path.stat().st_size == 0:
        what = "a folder" if path.is_dir() else "empty (0 bytes)"
        raise CompressLibError(f"audio file {path} is {what}; regenerate or re-download it")
    try:
        info = sf.info(str(path))
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        detail = str(exc).split(":", 1)[-1].strip()
        raise CompressLibError(
            f"audio file {path} is not readable audio ({detail}); it is corrupt, truncated or not a wav/flac "
            "file: regenerate or re-download it"
        ) from None
    declared = _wav_declared_frames(path) if info.format == "WAV" else None
    if declared is not None and declared > samples.shape[0]:
        raise CompressLibError(
            f"audio file {path} is truncated: its header promises {declared} samples, it holds {samples.shape[0]}; "
            "regenerate or re-download it"
        )
    if samples.shape[1] != 1:
        raise CompressLibError(
            f"audio file {path} has {samples.shape[1]} channels; compress_lib reads mono speech: mix it down first "
            "(e.g. `sox IN.wav OUT.wav remix -` or `ffmpeg -i IN -ac 1 OUT.wav`)"
        )
    if samples.shape[0] == 0:
        raise CompressLibError(f"audio file {path} holds no samples; regenerate or re-download it")
    if not np.isfinite(samples).all():
        raise CompressLibError(f"audio file {path} holds NaN or infinite samples; it is damaged: regenerate or "
                               "re-download it")
    return samples[:, 0], int(rate)


def _wav_declared_frames(path: Path) -> int | None:
    """The sample count a PCM wav header declares (libsndfile silently reads a truncated file); None if unknown."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes()
    except (wave.Error, EOFError, OSError):  # not plain PCM (float, extensible): no check
        return None


def write_wav(path: str | os.PathLike, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float samples in [-1, 1] as 16-bit PCM wav (x 32768 as libsndfile reads it back, rounded, clipped)."""
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    try:
        sf.write(str(path), pcm, rate, subtype="PCM_16", format="WAV")
    except sf.LibsndfileError as exc:
        code = _libsndfile_errno() or errno.EIO
        raise OSError(code, f"{os.strerror(code)} ({exc.error_string})", str(path)) from exc


def _libsndfile_errno() -> int:
    """The C errno a failed libsndfile call left behind (ENOSPC for a full disk), 0 if unknown."""
    ffi = getattr(sf, "_ffi", None)
    return int(getattr(ffi, "errno", 0) or 0)
