"""The install: requirements.txt, pyproject.toml and environment.yml pin the same versions, the virtual
environment holds them, and torchaudio's pure-Python parts work beside the CPU build of torch."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins(lines) -> dict[str, str]:
    """{canonical name: exact version} of `name==version` requirement lines; fails on anything unpinned."""
    result = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):  # comments, `-e .`, pip options
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{line!r} is not pinned to one exact version"
        name = canonicalize_name(req.name)
        assert name not in result, f"{req.name} is listed twice"
        result[name] = specs[0].version
    return result


def requirements_pins() -> dict[str, str]:
    return pins((ROOT / "requirements.txt").read_text().splitlines())


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_pins() -> dict[str, str]:
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    return pins(lines)


def environment_yml() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def environment_pip_pins() -> dict[str, str]:
    pip_sections = [d["pip"] for d in environment_yml()["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return pins(pip_sections[0])


def diff(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def test_pins_parser_rejects_unpinned_and_duplicates():
    assert pins(["torch==2.13.0  # comment", "", "-e ."]) == {"torch": "2.13.0"}
    with pytest.raises(AssertionError, match="not pinned"):
        pins(["numpy>=2"])
    with pytest.raises(AssertionError, match="twice"):
        pins(["numpy==2.4.6", "NumPy==2.4.6"])


def test_requirements_pin_every_dependency():
    reqs = requirements_pins()
    for name in ("torch", "torchaudio", "plotly", "jupyter-book", "papermill", "jupytext", "pytest"):
        assert name in reqs, f"requirements.txt does not pin {name}"
    assert reqs["jupyter-book"].startswith("1."), "jupyter-book 2.x ignores _config.yml/_toc.yml; pin 1.x"
    assert re.fullmatch(r"2\.13\.\d+", reqs["torch"]), "torch pin must stay in 2.13 (CPU wheel on this machine)"


def test_pyproject_names_the_same_versions():
    assert diff(requirements_pins(), pyproject_pins()) == []


def test_environment_yml_names_the_same_versions():
    assert diff(requirements_pins(), environment_pip_pins()) == []


def test_environment_yml_python_matches_pyproject():
    conda = [d for d in environment_yml()["dependencies"] if isinstance(d, str)]
    pythons = [d for d in conda if d.startswith("python")]
    assert pythons == ["python=3.11"], pythons
    assert "conda-forge" in environment_yml()["channels"]
    assert pyproject()["project"]["requires-python"] == ">=3.11"


def test_console_script_and_book_plugin_are_declared():
    project = pyproject()["project"]
    assert project["scripts"]["compress-lib"] == "compress_lib.cli:main"
    assert project["entry-points"]["myst_nb.mime_renderers"]["plotly"] == "compress_lib.plotting:PlotlyMimeRenderer"


def test_installed_versions_match_the_pins():
    """The virtual environment holds what requirements.txt pins (else: `make install`)."""
    wrong = []
    for name, version in requirements_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} is not installed")
            continue
        if not Requirement(f"{name}=={version}").specifier.contains(installed, prereleases=True):
            wrong.append(f"{name} {installed} installed, {version} pinned")
    assert wrong == [], "run `make install`: " + "; ".join(wrong)


def test_python_version():
    assert sys.version_info[:2] >= (3, 11)


def test_torchaudio_pure_python_parts_work():
    """Kaldi fbank, resampling and edit distance work beside the CPU torch (the compiled extension is aside)."""
    import torch
    import torchaudio
    import torchaudio.compliance.kaldi as kaldi
    import torchaudio.functional as AF

    sample_rate = 16_000
    t = torch.arange(sample_rate) / sample_rate
    wave = (0.1 * torch.sin(2 * torch.pi * 440 * t))[None]  # (1, 16000): one second of 440 Hz
    feats = kaldi.fbank(wave * 2**15, num_mel_bins=40, sample_frequency=sample_rate)  # (frames, 40)
    assert feats.shape == (98, 40)  # 25 ms windows every 10 ms over 1 s, Kaldi's snip_edges
    assert torch.isfinite(feats).all()
    assert feats.mean(0).argmax() < 10  # the energy of 440 Hz lands in a low Mel bin
    resampled = AF.resample(wave, orig_freq=sample_rate, new_freq=8_000)
    assert resampled.shape == (1, 8_000)
    assert AF.edit_distance(["aa", "b", "c"], ["aa", "c"]) == 1
    assert torchaudio.__version__.startswith(requirements_pins()["torchaudio"])


def test_binder_installs_the_debian_packages_the_corpus_needs():
    """apt.txt (Binder) lists exactly the Makefile's CORPUS_APT_PACKAGES, which `make apt` installs too."""
    makefile = (ROOT / "Makefile").read_text()
    corpus = re.search(r"^CORPUS_APT_PACKAGES := (.+)$", makefile, re.M).group(1).split()
    every = re.search(r"^APT_PACKAGES := (.+)$", makefile, re.M).group(1).split()
    assert "$(CORPUS_APT_PACKAGES)" in every
    listed = [line.strip() for line in (ROOT / "apt.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert listed == corpus == ["espeak-ng", "flite", "wordnet-base"]
