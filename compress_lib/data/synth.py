"""The two text-to-speech engines of the stand-in corpus, each returning audio *and* the phones it spoke.

- espeak-ng (formant synthesis, 22.05 kHz): one call writes the wav and prints its phonemes (`-x`); speakers
  are custom voice variants (pitch, formant scales, flutter, roughness, breath, Klatt synthesis), written as
  files into a private copy of espeak-ng's data folder (`EspeakVoices`).
- flite (CMU diphone / clustergen voices, 16 kHz): `-ps` prints the phone segments.

Both engines are deterministic: the same text, voice and engine version give the same samples.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import soundfile as sf

from compress_lib.data.phones import espeak_to_cmu, flite_to_cmu
from compress_lib.errors import CompressLibError

INSTALL_HINT = (
    "install the corpus engines with `sudo apt-get install -y --no-install-recommends espeak-ng flite wordnet-base` "
    "(or `make apt`)"
)


def _run(cmd: list[str], stdin: str | None = None, check: bool = True) -> str:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CompressLibError(f"`{cmd[0]}` is not installed; {INSTALL_HINT}") from None
    if check and done.returncode != 0:
        raise CompressLibError(f"`{' '.join(cmd[:4])} ...` failed ({done.stderr.strip()[:200]}); {INSTALL_HINT}")
    return done.stdout


def debian_version(package: str) -> str | None:
    """The installed Debian package version, or None off Debian."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return out.stdout.strip() or None


def engine_versions() -> dict[str, str | None]:
    """Versions that decide the audio and the text: recorded in corpus.json."""
    espeak = _run(["espeak-ng", "--version"]).split("Data at:")[0].strip()
    flite = re.search(r"version:\s*(\S+)", _run(["flite", "--version"], check=False))
    return {
        "espeak-ng": espeak,
        "espeak-ng (Debian)": debian_version("espeak-ng"),
        "flite": flite.group(1) if flite else None,
        "flite (Debian)": debian_version("flite"),
        "wordnet-base (Debian)": debian_version("wordnet-base"),
    }


def espeak_data_dir() -> Path:
    """espeak-ng's data folder (architecture-dependent), as `espeak-ng --version` reports it."""
    match = re.search(r"Data at:\s*(\S+)", _run(["espeak-ng", "--version"]))
    if not match or not Path(match.group(1)).is_dir():
        raise CompressLibError(f"cannot find espeak-ng's data folder; {INSTALL_HINT}")
    return Path(match.group(1))


def variant_file_text(name: str, variant: dict) -> str:
    """An espeak-ng voice variant file (see espeak-ng's docs/voices.md) from a parameter dict."""
    lines = ["language variant", f"name {name}", f"gender {variant['gender']}"]
    lines.append(f"pitch {variant['pitch_base_hz']} {variant['pitch_top_hz']}")
    formants = zip(variant["formant_freq_pct"], variant["formant_height_pct"], variant["formant_width_pct"])
    for number, (freq, height, width) in enumerate(formants):
        lines.append(f"formant {number} {freq} {height} {width}")
    for key in ("flutter", "roughness", "consonants"):
        lines.append(f"{key} {variant[key]}")
    if variant["breath"]:
        lines.append("breath 0 " + " ".join([str(variant["breath"])] * 7))
    if variant["echo"]:
        lines.append("echo " + " ".join(map(str, variant["echo"])))
    if variant["klatt"]:
        lines.append(f"klatt {variant['klatt']}")
    return "\n".join(lines) + "\n"


class EspeakVoices:
    """A private espeak-ng data folder: the system one, linked, plus our variants under voices/!v/.

    `path` is what `espeak-ng --path` takes (the parent of `espeak-ng-data`).
    """

    def __init__(self, root: str | os.PathLike, variants: dict[str, dict]):
        self.path = Path(root)
        data = self.path / "espeak-ng-data"
        if data.exists():
            shutil.rmtree(data)
        (data / "voices" / "!v").mkdir(parents=True)
        for entry in espeak_data_dir().iterdir():
            if entry.name != "voices":
                (data / entry.name).symlink_to(entry)
        for name, variant in variants.items():
            (data / "voices" / "!v" / name).write_text(variant_file_text(name, variant))
        listed = _run(["espeak-ng", f"--path={self.path}", "--voices=variant"])
        missing = [n for n in variants if f"!v/{n}" not in listed]
        if missing:
            raise CompressLibError(f"espeak-ng ignored the voice variants {missing[:3]}; {INSTALL_HINT}")


def synth_espeak(text: str, accent: str, variant: str, words_per_minute: int, data_path: Path, tmp_wav: Path):
    """Speak `text`: returns (samples float64 (N,), sample rate, CMU phones)."""
    cmd = ["espeak-ng", f"--path={data_path}", "-v", f"{accent}+{variant}", "-s", str(words_per_minute)]
    phonemes = _run([*cmd, "-x", "--sep= ", "-w", str(tmp_wav)], stdin=text)
    samples, rate = sf.read(str(tmp_wav), dtype="float64")
    return samples, rate, espeak_to_cmu(phonemes)


def synth_flite(text: str, voice: str, duration_stretch: float, tmp_wav: Path):
    """Speak `text` with a built-in flite voice: returns (samples float64 (N,), sample rate, CMU phones)."""
    cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={duration_stretch}", "-ps"]
    segments = _run([*cmd, "-t", text, "-o", str(tmp_wav)])
    samples, rate = sf.read(str(tmp_wav), dtype="float64")
    return samples, rate, flite_to_cmu(segments)

