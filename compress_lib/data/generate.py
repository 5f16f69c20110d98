"""The embedded stand-in corpus: synthetic speech with exact phone labels, generated deterministically.

LibriSpeech and VoxCeleb1 cannot be downloaded on the study's machines, so `compress-lib corpus` generates a
corpus of its own from Debian packages (about 11 MB of engines and text, no network):

- **voices**: espeak-ng's 8 English accents, each speaker a custom voice variant drawn from the seed (pitch
  base and range, formant frequency / height / width scales, flutter, roughness, breath, echo, Klatt
  synthesis, speaking rate), plus flite's four voices (slt, rms, awb, kal16);
- **text**: the ~28,000 unique example sentences of WordNet's glosses (Debian `wordnet-base`), two per
  utterance (about 5 s), each sentence used once in the whole corpus, so every split is text-disjoint;
- **labels**: the phones each engine says it spoke (`espeak-ng -x`, `flite -ps`), mapped to the 39-phone CMU
  inventory (`compress_lib/data/phones.py`);
- **audio**: resampled to 16 kHz, set to -23 dBFS RMS, a -65 dBFS noise floor (the engines write digital
  silence), 16-bit mono wav.

Splits (counts at `--scale 1`, from `data/corpus/recipe.json`):

| split | speakers | what it is for |
|---|---|---|
| pretrain | 32 espeak + 4 flite | self-supervised pretraining (stands in for LibriSpeech 960 h) |
| pr-train | the rhotic ones of pretrain's speakers | phone recognition training (stands in for train-clean-100) |
| pr-dev, pr-test | 4 and 6 held-out rhotic espeak speakers | PR dev / test (dev-clean, test-clean) |
| sid-train/dev/test | 60 further espeak speakers, in all three | speaker ID (VoxCeleb1), augmented per utterance |

Only rhotic accents (en-us, en-us-nyc, en-gb-scotland, flite's four US / Scottish voices) serve phone recognition:
espeak's non-rhotic accents label an "r" they do not say. Speaker ID on clean synthetic voices is trivial,
so every SID utterance gets its own channel: speed 0.87-1.13, random EQ and band limits, synthetic reverb
(RT60 0.2-0.7 s, half the utterances), coloured noise at 5-25 dB SNR, gain +-6 dB. The generator measures
the difficulty it produced: a Gaussian classifier on utterance-mean log-Mel (`trivial_sid_baseline`).

`--scale` multiplies the utterance counts (at least 4 per split); below 1 the SID speaker count shrinks with
sqrt(scale) (at least 4 speakers, each in all three SID splits). The same seed and scale give byte-identical
files with any number of jobs: every utterance draws its randomness from (seed, split, index) alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from compress_lib.data.audio import SAMPLE_RATE, write_wav
from compress_lib.data.augment import add_noise_floor, augment, set_rms_level
from compress_lib.data.manifest import (
    CORPUS_FORMAT,
    CORPUS_VERSION,
    SID_SPLITS,
    SPLITS,
    Utterance,
    prepare_out_dir,
    read_split,
    split_summary,
    write_split,
)
from compress_lib.data.synth import EspeakVoices, engine_versions, synth_espeak, synth_flite
from compress_lib.errors import CompressLibError
from compress_lib.files import write_text_atomic
from compress_lib.threads import num_threads

RECIPE_PATH = Path(__file__).resolve().parents[2] / "data" / "corpus" / "recipe.json"
WORDNET_DIR = Path("/usr/share/wordnet")
# salts that keep the random streams of speakers, utterances and the text shuffle apart
_SALT_TEXT, _SALT_SPEAKER, _SALT_UTTERANCE = 11, 23, 37


# -- recipe and text ---------------------------------------------------------------------------------


def load_recipe(path: str | os.PathLike | None = None) -> dict:
    path = Path(path) if path else RECIPE_PATH
    if not path.is_file():
        raise CompressLibError(f"corpus recipe {path} does not exist; pass --recipe FILE (data/corpus/recipe.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CompressLibError(f"corpus recipe {path} is not valid JSON ({exc}); fix it") from None


def wordnet_sentences(wordnet_dir: Path = WORDNET_DIR) -> list[str]:
    """The unique example sentences quoted in WordNet's glosses (5-20 words, plain letters), sorted."""
    files = sorted(p for p in wordnet_dir.glob("data.*") if p.suffix in (".noun", ".verb", ".adj", ".adv"))
    if not files:
        raise CompressLibError(
            f"WordNet's data files are missing from {wordnet_dir}; install them with "
            "`sudo apt-get install -y wordnet-base` (or `make apt`)"
        )
    sentences = set()
    for path in files:
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:  # the license header is indented
                continue
            for example in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                example = example.strip()
                if 5 <= len(example.split()) <= 20 and re.fullmatch(r"[A-Za-z][A-Za-z ,.;:'?!-]*", example):
                    sentences.add(example)
    return sorted(sentences)


def as_sentence(text: str) -> str:
    text = text[0].upper() + text[1:].rstrip(",;:- ")
    return text if text[-1] in ".?!" else text + "."


# -- speakers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speaker:
    name: str  # e.g. "en-us-007" or "flite-slt"
    engine: str  # "espeak-ng" or "flite"
    voice: str  # espeak accent (en-us, ...) or flite voice (slt, ...)
    rhotic: bool  # says every "r" it labels: usable for phone recognition
    words_per_minute: int | None = None  # espeak speaking rate
    duration_stretch: float | None = None  # flite speaking rate (1 = normal)
    variant: dict = field(default_factory=dict)  # espeak voice variant parameters (see synth.variant_file_text)


def _uniform_int(rng: np.random.Generator, low_high) -> int:
    return int(rng.integers(low_high[0], low_high[1] + 1))


def espeak_variant(rng: np.random.Generator, gender: str, cfg: dict) -> dict:
    """Random voice-variant parameters of one espeak speaker."""
    base = _uniform_int(rng, cfg["pitch_base_hz"][gender])
    scale = rng.uniform(*cfg["formant_scale"][gender])
    jitter = cfg["formant_jitter"]
    return {
        "gender": gender,
        "pitch_base_hz": base,
        "pitch_top_hz": int(round(base * rng.uniform(*cfg["pitch_top_ratio"]))),
        "formant_freq_pct": [int(round(100 * scale * rng.uniform(1 - jitter, 1 + jitter))) for _ in range(9)],
        "formant_height_pct": [_uniform_int(rng, cfg["formant_height_pct"]) for _ in range(9)],
        "formant_width_pct": [_uniform_int(rng, cfg["formant_width_pct"][gender]) for _ in range(9)],
        "flutter": _uniform_int(rng, cfg["flutter"]),
        "roughness": _uniform_int(rng, cfg["roughness"]),
        "consonants": _uniform_int(rng, cfg["consonants"]),
        "breath": _uniform_int(rng, cfg["breath"]) if rng.uniform() < cfg["breath_probability"] else 0,
        "echo": (
            [_uniform_int(rng, cfg["echo_delay_ms"]), _uniform_int(rng, cfg["echo_amplitude_pct"])]
            if rng.uniform() < cfg["echo_probability"]
            else []
        ),
        "klatt": _uniform_int(rng, cfg["klatt"]) if rng.uniform() < cfg["klatt_probability"] else 0,
    }


def interleave(*lists: list) -> list:
    """Merge lists so that any prefix holds each list in proportion: [a0, b0, a1, b1, b2, ...]."""
    keyed = [((i + 0.5) / len(lst), k, item) for k, lst in enumerate(lists) for i, item in enumerate(lst)]
    return [item for _, _, item in sorted(keyed, key=lambda t: (t[0], t[1]))]


def make_speakers(recipe: dict, seed: int) -> dict[str, list[Speaker]]:
    """Every speaker group of the recipe; a speaker's voice depends only on (seed, its global index)."""
    es, fl = recipe["espeak"], recipe["flite"]
    counter = 0
    groups: dict[str, list[Speaker]] = {}
    for group, spec in recipe["speaker_groups"].items():
        members: dict[bool, list[Speaker]] = {True: [], False: []}
        kinds = ((True, "espeak_rhotic", es["rhotic_accents"]), (False, "espeak_other", es["other_accents"]))
        for rhotic, key, accents in kinds:
            for i in range(spec.get(key, 0)):
                counter += 1
                rng = np.random.default_rng([seed, _SALT_SPEAKER, counter])
                accent = accents[i % len(accents)]
                gender = "female" if counter % 2 else "male"
                members[rhotic].append(
                    Speaker(
                        name=f"{accent}-{counter:03d}",
                        engine="espeak-ng",
                        voice=accent,
                        rhotic=rhotic,
                        words_per_minute=_uniform_int(rng, es["words_per_minute"]),
                        variant=espeak_variant(rng, gender, es),
                    )
                )
        flite = []
        if spec.get("flite"):
            rng = np.random.default_rng([seed, _SALT_SPEAKER, 0])
            for voice in fl["rhotic_voices"] + fl["other_voices"]:
                stretch = round(float(rng.uniform(*fl["duration_stretch"])), 3)
                flite.append(Speaker(f"flite-{voice}", "flite", voice, voice in fl["rhotic_voices"], None, stretch))
        groups[group] = interleave(*(lst for lst in (flite, members[True], members[False]) if lst))
    return groups


# -- the plan: which speaker says which sentences, in which split -----------------------------------


@dataclass(frozen=True)
class Task:
    id: str
    split: str
    speaker: Speaker
    text: str
    rel_path: str  # relative to the corpus folder
    seed: tuple[int, ...]  # the utterance's own random stream
    augment: bool


def split_speakers(recipe: dict, groups: dict[str, list[Speaker]], split: str, scale: float) -> list[Speaker]:
    spec = recipe["splits"][split]
    speakers = [s for s in groups[spec["speakers"]] if s.rhotic or not spec.get("rhotic_only")]
    if "utterances_per_speaker" in spec:
        wanted = round(len(speakers) * math.sqrt(min(scale, 1.0)))
        speakers = speakers[: max(recipe["small_scale"]["min_sid_speakers"], wanted)]
    return speakers


def plan_corpus(recipe: dict, groups: dict[str, list[Speaker]], sentences: list[str], seed: int, scale: float):
    """All utterances of the corpus, in manifest order. Each sentence is spoken once in the whole corpus."""
    small = recipe["small_scale"]
    per_utt = recipe["sentences_per_utterance"]
    order = np.random.default_rng([seed, _SALT_TEXT]).permutation(len(sentences))
    tasks: list[Task] = []
    for split_index, split in enumerate(SPLITS):
        spec = recipe["splits"][split]
        speakers = split_speakers(recipe, groups, split, scale)
        if "utterances_per_speaker" in spec:  # every SID speaker in every SID split
            per_speaker = max(small["min_utterances_per_speaker"][split], round(spec["utterances_per_speaker"] * scale))
            count = per_speaker * len(speakers)
        else:
            count = max(small["min_utterances"], round(spec["utterances"] * scale))
        for i in range(count):
            start = len(tasks) * per_utt
            if start + per_utt > len(sentences):
                raise CompressLibError(
                    f"--scale {scale} needs more than the {len(sentences)} WordNet sentences (each is used once); "
                    "use a smaller --scale"
                )
            text = " ".join(as_sentence(sentences[j]) for j in order[start : start + per_utt])
            speaker = speakers[i % len(speakers)]
            utt_id = f"{split}-{i:05d}"
            tasks.append(
                Task(
                    id=utt_id,
                    split=split,
                    speaker=speaker,
                    text=text,
                    rel_path=f"wav/{split}/{speaker.name}/{utt_id}.wav",
                    seed=(seed, _SALT_UTTERANCE, split_index, i),
                    augment=bool(spec.get("augment")),
                )
            )
    return tasks


# -- synthesis (runs in worker processes) ------------------------------------------------------------

_worker: dict = {}


def _init_worker(out_dir: str, espeak_path: str, tmp_dir: str, recipe: dict) -> None:
    _worker.update(out_dir=Path(out_dir), espeak_path=Path(espeak_path), tmp_dir=Path(tmp_dir), recipe=recipe)


def synthesize(task: Task) -> dict:
    """Speak one utterance, post-process it, write its wav; returns its manifest row (path relative)."""
    recipe, spk = _worker["recipe"], task.speaker
    tmp_wav = _worker["tmp_dir"] / f"{os.getpid()}.wav"
    if spk.engine == "espeak-ng":
        espeak_path = _worker["espeak_path"]
        x, rate, phones = synth_espeak(task.text, spk.voice, spk.name, spk.words_per_minute, espeak_path, tmp_wav)
    else:
        x, rate, phones = synth_flite(task.text, spk.voice, spk.duration_stretch, tmp_wav)
    if not phones or len(x) == 0:
        raise CompressLibError(f"{spk.engine} said nothing for {task.text!r}; check the engine is installed correctly")
    if rate != SAMPLE_RATE:
        g = math.gcd(rate, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    rng = np.random.default_rng(list(task.seed))
    level = recipe["level_dbfs"]
    if task.augment:
        x = augment(x, rng, SAMPLE_RATE, recipe["augmentation"])
        level += rng.uniform(*recipe["augmentation"]["gain_db"])
    x = add_noise_floor(set_rms_level(x, level), rng, recipe["noise_floor_dbfs"])
    write_wav(_worker["out_dir"] / task.rel_path, x)
    return {
        "id": task.id,
        "path": task.rel_path,
        "duration": len(x) / SAMPLE_RATE,
        "speaker": spk.name,
        "phones": phones,
        "text": task.text,
    }


def _run_tasks(tasks: list[Task], jobs: int, init_args: tuple, progress: bool) -> list[dict]:
    bar = tqdm(total=len(tasks), desc="synthesising", unit="utt", disable=not progress)
    rows = []
    if jobs == 1:
        _init_worker(*init_args)
        for task in tasks:
            rows.append(synthesize(task))
            bar.update()
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(jobs, _init_worker, init_args) as pool:
            for row in pool.imap(synthesize, tasks, chunksize=4):
                rows.append(row)
                bar.update()
    bar.close()
    return rows


# -- the whole corpus --------------------------------------------------------------------------------


def recipe_digest(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def corpus_is_complete(data_dir: Path, info: dict) -> bool:
    """corpus.json says complete and every manifest and audio file it counts is there."""
    if info.get("status") != "complete":
        return False
    try:
        return all(len(read_split(data_dir, s)) == n["utterances"] for s, n in info["splits"].items())
    except CompressLibError:
        return False


def read_corpus_info(data_dir: str | os.PathLike) -> dict | None:
    path = Path(data_dir) / "corpus.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def generate_corpus(
    out_dir: str | os.PathLike,
    scale: float = 1.0,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
    recipe_path: str | os.PathLike | None = None,
    force: bool = False,
) -> dict:
    """Generate the stand-in corpus into `out_dir`; returns the contents of its corpus.json.

    Reuses an existing complete corpus of the same seed, scale, recipe and engine versions unless `force`.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise CompressLibError(f"--scale must be a finite number > 0, got {scale}")
    if jobs < 1:
        raise CompressLibError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out_dir)
    recipe = load_recipe(recipe_path)
    identity = {
        "format": CORPUS_FORMAT,
        "version": CORPUS_VERSION,
        "kind": "generated",
        "seed": int(seed),
        "scale": float(scale),
        "recipe_sha256": recipe_digest(recipe),
        "engines": engine_versions(),
    }
    info = read_corpus_info(out)
    if not force and info and {k: info.get(k) for k in identity} == identity and corpus_is_complete(out, info):
        return info
    sentences = wordnet_sentences()
    groups = make_speakers(recipe, seed)
    tasks = plan_corpus(recipe, groups, sentences, seed, scale)

    prepare_out_dir(out)
    write_text_atomic(out / "corpus.json", json.dumps({**identity, "status": "generating"}, indent=1) + "\n")
    for rel_dir in sorted({str(Path(t.rel_path).parent) for t in tasks}):
        (out / rel_dir).mkdir(parents=True, exist_ok=True)
    used = {t.speaker.name: t.speaker for t in tasks}
    with tempfile.TemporaryDirectory(prefix="compress-lib-corpus-") as tmp:
        variants = {name: s.variant for name, s in used.items() if s.engine == "espeak-ng"}
        voices = EspeakVoices(tmp, variants)
        rows = _run_tasks(tasks, jobs, (str(out), str(voices.path), tmp, recipe), progress)

    out_resolved = out.resolve()
    summary = {}
    for split in SPLITS:
        utts = [
            Utterance(r["id"], out_resolved / r["path"], r["duration"], r["speaker"], r["phones"], r["text"])
            for r, t in zip(rows, tasks)
            if t.split == split
        ]
        write_split(out, split, utts)
        summary[split] = split_summary(utts)
    info = {
        **identity,
        "status": "complete",
        "splits": summary,
        "total_hours": round(sum(s["hours"] for s in summary.values()), 4),
        "sentences_available": len(sentences),
        "trivial_sid_baseline": trivial_sid_baseline(out),
        "speakers": {name: _speaker_info(s) for name, s in sorted(used.items())},
        "recipe": recipe,
    }
    write_text_atomic(out / "corpus.json", json.dumps(info, indent=1) + "\n")
    return info


def _speaker_info(speaker: Speaker) -> dict:
    return {k: v for k, v in asdict(speaker).items() if v not in (None, {}) and k != "name"}


# -- how hard is speaker ID? -------------------------------------------------------------------------


def utterance_mean_log_mel(utterances: list[Utterance]) -> np.ndarray:
    """(N, 40): each utterance's log-Mel frames averaged over time."""
    from compress_lib.data.audio import load_audio
    from compress_lib.data.features import log_mel

    with num_threads(1):
        return np.stack([log_mel(load_audio(u.path)).mean(0).numpy() for u in utterances]).astype(np.float64)


def trivial_sid_baseline(data_dir: str | os.PathLike) -> dict:
    """Accuracy of two Gaussian classifiers of utterance-mean log-Mel, fit on sid-train.

    `gaussian_shared_cov` is linear discriminant analysis (one Gaussian per speaker, shared full covariance);
    `gaussian_diagonal` is Gaussian naive Bayes. If either is near 100%, speaker ID on this corpus cannot show
    what compression costs.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.naive_bayes import GaussianNB
    from threadpoolctl import threadpool_limits

    data = {split: read_split(data_dir, split) for split in SID_SPLITS}
    feats = {split: utterance_mean_log_mel(utts) for split, utts in data.items()}
    labels = {split: [u.speaker for u in utts] for split, utts in data.items()}
    result: dict = {"features": "utterance-mean 40-bin log-Mel", "speakers": len(set(labels["sid-train"]))}
    result["chance"] = round(1.0 / result["speakers"], 4)
    for name, model in (("gaussian_shared_cov", LinearDiscriminantAnalysis()), ("gaussian_diagonal", GaussianNB())):
        with threadpool_limits(limits=1):
            model.fit(feats["sid-train"], labels["sid-train"])
            for split in ("sid-dev", "sid-test"):
                accuracy = float(np.mean(model.predict(feats[split]) == np.array(labels[split])))
                result[f"{name}_{split.removeprefix('sid-')}_accuracy"] = round(accuracy, 4)
    return result


def corpus_conflict(info: dict, scale_: float, seed_: int, data_dir) -> str | None:
    """Why the complete corpus `info` (of `data_dir`) is not the one asked for (scale_ 0: any scale), or None when
    it is: a generated corpus of another scale or seed (the message names the notebook parameters that fix it)."""
    if info.get("kind") != "generated":
        return None
    if (not scale_ or float(info["scale"]) == scale_) and info.get("seed") == seed_:
        return None
    return (f"{data_dir} holds a corpus of scale {info['scale']:g} and seed {info.get('seed')}, not scale "
            f"{scale_ or info['scale']:g} and seed {seed_}; pass -p scale {info['scale']:g} -p corpus_seed "
            f"{info.get('seed')} to describe it, or another -p data_dir to generate a new one")
