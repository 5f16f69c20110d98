"""Per-utterance audio augmentation of the speaker-ID splits, and the level / noise floor of every utterance.

Clean synthetic voices make speaker ID trivial (a Gaussian classifier on utterance-mean log-Mel scores 95-100%),
so each SID utterance gets its own random channel: speed change, EQ, reverberation (half of them), coloured
noise. Each function is pure: float64 samples in, float64 samples out, randomness only from the `rng` given.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import fftconvolve, resample_poly


def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def set_rms_level(x: np.ndarray, dbfs: float, peak_limit: float = 0.98) -> np.ndarray:
    """Scale to an RMS level in dB re full scale, then down if the peak would exceed `peak_limit`."""
    rms = np.sqrt(np.mean(x**2)) + 1e-12
    y = x * (db_to_amplitude(dbfs) / rms)
    peak = np.max(np.abs(y))
    return y * (peak_limit / peak) if peak > peak_limit else y


def add_noise_floor(x: np.ndarray, rng: np.random.Generator, dbfs: float) -> np.ndarray:
    """White noise at `dbfs` RMS: synthetic speech has digital silence, whose log-Mel is -inf."""
    return x + rng.standard_normal(len(x)) * db_to_amplitude(dbfs)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (tempo and pitch, as Kaldi's speed perturbation), by resampling."""
    down = int(round(factor * 100))
    return resample_poly(x, 100, down)


def random_eq(x: np.ndarray, rng: np.random.Generator, rate: int, cfg: dict) -> np.ndarray:
    """A random zero-phase channel: spectral tilt + one peak/notch + band limits (high-pass, low-pass)."""
    n = next_fast_len(len(x) + rate // 10, real=True)  # zero padding: no wrap-around, a fast FFT size
    freqs = np.fft.rfftfreq(n, 1.0 / rate)  # (n/2 + 1,) Hz
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    tilt = rng.uniform(*cfg["eq_tilt_db_per_octave"])
    peak_hz = np.exp(rng.uniform(*np.log(cfg["eq_peak_hz"])))
    peak_db = rng.uniform(*cfg["eq_peak_gain_db"])
    width = rng.uniform(*cfg["eq_peak_octaves"])
    highpass = rng.uniform(*cfg["highpass_hz"])
    lowpass = rng.uniform(*cfg["lowpass_hz"])
    gain_db = tilt * octaves + peak_db * np.exp(-0.5 * (np.log2(np.maximum(freqs, 20.0) / peak_hz) / width) ** 2)
    gain = 10.0 ** (gain_db / 20.0)
    gain /= np.sqrt(1.0 + (highpass / np.maximum(freqs, 1.0)) ** 4)  # 2nd-order Butterworth magnitudes
    gain /= np.sqrt(1.0 + (freqs / lowpass) ** 8)  # 4th order
    return np.fft.irfft(np.fft.rfft(x, n) * gain, n)[: len(x)]


def synthetic_reverb(x: np.ndarray, rng: np.random.Generator, rate: int, rt60_s: float) -> np.ndarray:
    """Convolve with an exponentially decaying noise tail (60 dB down after `rt60_s`) after a direct path."""
    n = int(rate * rt60_s)
    t = np.arange(n) / rate
    impulse = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s) * rng.uniform(0.2, 0.6)
    impulse[0] = 1.0
    wet = fftconvolve(x, impulse)[: len(x)]
    return wet * (np.sqrt(np.mean(x**2)) / (np.sqrt(np.mean(wet**2)) + 1e-12))


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum 1 / f**exponent (0 white, 1 pink, 2 brown)."""
    m = next_fast_len(n, real=True)
    spectrum = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    f = np.arange(m // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / f ** (exponent / 2.0), m)[:n]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def augment(x: np.ndarray, rng: np.random.Generator, rate: int, cfg: dict) -> np.ndarray:
    """speed -> EQ -> reverb (with probability cfg['reverb_probability']) -> noise at a random SNR."""
    x = change_speed(x, rng.uniform(*cfg["speed"]))
    x = random_eq(x, rng, rate, cfg)
    if rng.uniform() < cfg["reverb_probability"]:
        x = synthetic_reverb(x, rng, rate, rng.uniform(*cfg["reverb_rt60_s"]))
    snr_db = rng.uniform(*cfg["noise_snr_db"])
    noise = coloured_noise(rng, len(x), rng.uniform(*cfg["noise_colour_exponent"]))
    return x + noise * np.sqrt(np.mean(x**2)) * db_to_amplitude(-snr_db)
