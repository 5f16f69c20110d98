"""SUPERB-style downstream evaluation: train a probe on a frozen upstream, select on dev, report on test.

    hidden states (cached, see upstream.py) -> probe (probes.py) trained with the shared loop (training.py)
      -> dev metric every `eval_every` steps, the best probe kept -> its test metric

Tasks: `pr` (phone recognition, CTC, phone error rate in %, lower is better) on splits pr-train/pr-dev/pr-test
and `sid` (speaker identification, accuracy in %, higher is better) on sid-train/sid-dev/sid-test.

Hyperparameters per preset live in `DOWNSTREAM_PRESETS`: `paper` is s3prl's recipe (libriphone.yaml and
voxceleb1/config.yaml), `study` was chosen once on dev sets (see `tune_probe` and the comment at the table) and
is fixed for every compressed model.

How this differs from s3prl: PR batches are s3prl's length buckets, padded once; the two PR linear layers are
applied as one composed matrix and the SID probe reads per-layer utterance means (both exact rewrites, see
probes.py); SID trains on whole utterances where s3prl takes random 8 s crops of longer ones (no difference on
the stand-in corpus, whose utterances last about 5 s).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from compress_lib.checkpoint import safe_torch_load
from compress_lib.downstream.probes import (
    PhoneRecognitionProbe,
    SpeakerIDProbe,
    accuracy,
    ctc_greedy_decode,
    ctc_loss,
    phone_error_rate,
)
from compress_lib.downstream.upstream import DEFAULT_CACHE_GB, HiddenStates, Upstream, hidden_states_for_split
from compress_lib.efficiency import count_parameters, macs_per_second, profile_model
from compress_lib.errors import CompressLibError, check_choice, check_same_settings
from compress_lib.files import write_text_atomic
from compress_lib.locking import folder_lock
from compress_lib.overrides import parse_overrides
from compress_lib.presets import check_preset
from compress_lib.threads import num_threads
from compress_lib.training import TrainConfig, train, write_log_csv

TASKS = ("pr", "sid")
SPLITS = {"pr": ("pr-train", "pr-dev", "pr-test"), "sid": ("sid-train", "sid-dev", "sid-test")}
METRIC = {"pr": "per", "sid": "sid_accuracy"}  # column of the results table; both in percent


@dataclass(frozen=True)
class ProbeHParams:
    lr: float  # Adam learning rate
    steps: int  # optimizer updates
    batch: int  # utterances per micro-batch
    grad_accum: int = 1  # micro-batches per update
    eval_every: int = 100  # updates between dev evaluations (model selection)
    clip_norm: float = 1.0  # gradient clipping (s3prl: 1)
    schedule: str = "constant"  # "constant" (s3prl) or "linear" (decay to 0 over `steps`)

    def __post_init__(self):
        check_choice(self.schedule, ("constant", "linear"), "learning-rate schedule")
        if min(self.steps, self.batch, self.grad_accum, self.eval_every) < 1 or not self.lr > 0:
            raise CompressLibError(f"probe hyperparameters must be positive, got {self}")


# paper: s3prl's recipes (downstream/ctc/libriphone.yaml, downstream/voxceleb1/config.yaml): Adam, no scheduler,
# gradient clipping 1; PR lr 1e-2, 100k steps, batch 16 x 2, dev every 1000; SID lr 1e-4, 200k steps,
# batch 8 x 4, dev every 4000.
# study: chosen on the dev sets of the stand-in corpus (`tools/tune_probe.py`), then fixed for every model: linear
# decay lets a probe settle in few updates. The SID probe takes 5,000 updates: on dev they score within the
# standard error of 20,000 for the dense model and both references, at a quarter of the cost (`tools/probe_levers.py`,
# data/probe_levers.csv). The search and its numbers: docs/study_preset.md. Evaluating the dense model costs about
# 3.6 CPU-minutes of one core at 20 ms (hidden states of 3.7 h of SID and 1.2 h of PR speech ~2.6 min, probes ~1.0
# min) and about twice that at 10 ms (docs/run_profile.md).
DOWNSTREAM_PRESETS: dict[str, dict[str, ProbeHParams]] = {
    "smoke": {
        "pr": ProbeHParams(lr=1e-2, steps=40, batch=8, eval_every=20),
        "sid": ProbeHParams(lr=1e-2, steps=40, batch=16, eval_every=20),
    },
    "lab": {  # the study's probes with fewer updates (docs/lab_preset.md)
        "pr": ProbeHParams(lr=1e-2, steps=300, batch=16, eval_every=100, schedule="linear"),
        "sid": ProbeHParams(lr=1e-2, steps=1000, batch=64, eval_every=250, schedule="linear"),
    },
    "study": {
        "pr": ProbeHParams(lr=1e-2, steps=1000, batch=16, eval_every=200, schedule="linear"),
        "sid": ProbeHParams(lr=1e-2, steps=5000, batch=64, eval_every=500, schedule="linear"),
    },
    "paper": {
        "pr": ProbeHParams(lr=1e-2, steps=100_000, batch=16, grad_accum=2, eval_every=1000),
        "sid": ProbeHParams(lr=1e-4, steps=200_000, batch=8, grad_accum=4, eval_every=4000),
    },
}


def probe_hparams(preset: str, settings=None, label: str = "settings") -> dict[str, ProbeHParams]:
    """task -> the preset's probe hyperparameters with `settings` applied: a dict or "task.field=value,..."
    (e.g. "pr.steps=200,sid.lr=0.03"; fields of ProbeHParams). One CompressLibError names a bad field or value."""
    presets = DOWNSTREAM_PRESETS[check_preset(preset)]
    defaults = {f"{task}.{name}": value for task, hp in presets.items() for name, value in dataclasses.asdict(hp).items()}
    changes = parse_overrides(settings, defaults, "probe setting", label)
    return {task: dataclasses.replace(hp, **{key.split(".", 1)[1]: value for key, value in changes.items()
                                             if key.startswith(task + ".")})
            for task, hp in presets.items()}


# ---------------------------------------------------------------------------------------------------------
# Labelled probe data
# ---------------------------------------------------------------------------------------------------------
@dataclass
class ProbeData:
    """Hidden states of one split with their labels: phone index tensors (PR) or speaker indices (SID)."""

    states: HiddenStates
    labels: list[torch.Tensor] | torch.Tensor
    _batches: dict = field(default_factory=dict, repr=False)
    _buffer: torch.Tensor = field(default_factory=lambda: torch.empty(0), repr=False)

    def length_batches(self, batch_size: int):
        """Padded batches of similar-length utterances, built once: [(index, states (B, L, T, D) fp16, lengths)]."""
        if batch_size not in self._batches:
            self._batches[batch_size] = self.states.length_batches(batch_size)
        return self._batches[batch_size]

    def as_float32(self, hidden: torch.Tensor) -> torch.Tensor:
        """`hidden.float()` into a reused buffer: a fresh tensor this large is a fresh memory mapping, and
        touching its pages costs more than the probe's arithmetic. Valid until the next call."""
        if self._buffer.numel() < hidden.numel():
            self._buffer = torch.empty(hidden.numel())
        return self._buffer[: hidden.numel()].view(hidden.shape).copy_(hidden)


def phone_labels(utterances, phones: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """utterance id -> phone class indices (phone i of the inventory is class i + 1; 0 is the CTC blank)."""
    index = {p: i + 1 for i, p in enumerate(phones)}
    out = {}
    for u in utterances:
        unknown = sorted(set(u.phones) - set(index))
        if unknown:
            raise CompressLibError(
                f"utterance {u.id} has phones outside the 39-phone inventory: {unknown}; regenerate the corpus"
            )
        if not u.phones:
            raise CompressLibError(f"utterance {u.id} has no phone labels; regenerate the corpus")
        out[u.id] = torch.tensor([index[p] for p in u.phones], dtype=torch.long)
    return out


def speaker_labels(train_utterances, *other_splits) -> tuple[list[str], list[dict[str, int]]]:
    """Speaker classes of sid-train (sorted) and, per split, utterance id -> class; unseen speakers are an error."""
    speakers = sorted({u.speaker for u in train_utterances})
    index = {s: i for i, s in enumerate(speakers)}
    maps = []
    for utterances in (train_utterances, *other_splits):
        unseen = sorted({u.speaker for u in utterances} - set(index))
        if unseen:
            raise CompressLibError(
                f"speaker ID is closed-set but {len(unseen)} speakers (e.g. {unseen[0]}) are not in sid-train; "
                "regenerate the corpus"
            )
        maps.append({u.id: index[u.speaker] for u in utterances})
    return speakers, maps


def align_labels(states: HiddenStates, labels_by_id: dict) -> list | torch.Tensor:
    missing = [i for i in states.ids if i not in labels_by_id]
    if missing:
        raise CompressLibError(f"no labels for utterance {missing[0]} (and {len(missing) - 1} more); the hidden-state "
                               "cache does not match the corpus: delete the cache folder")
    labels = [labels_by_id[i] for i in states.ids]
    return labels if torch.is_tensor(labels[0]) else torch.tensor(labels, dtype=torch.long)


# ---------------------------------------------------------------------------------------------------------
# Probes: build, score, train with model selection
# ---------------------------------------------------------------------------------------------------------
def make_probe(task: str, data: ProbeData, num_classes: int) -> torch.nn.Module:
    L, D = data.states.num_layers, data.states.dim
    return PhoneRecognitionProbe(L, D, num_classes) if task == "pr" else SpeakerIDProbe(L, D, num_classes)


def probe_loss(task: str, probe, data: ProbeData, batch) -> torch.Tensor:
    """PR: batch = (index, states, lengths) of a length batch (CTC loss); SID: utterance indices (cross-entropy)."""
    if task == "pr":
        index, hidden, lengths = batch  # one of data.length_batches(...): (B, L, T, D) float16
        return ctc_loss(probe(data.as_float32(hidden)), lengths, [data.labels[i] for i in index])
    logits = probe.forward_pooled(data.states.pooled[batch])  # (B, speakers)
    return torch.nn.functional.cross_entropy(logits, data.labels[batch])


@torch.no_grad()
def probe_metric(task: str, probe, data: ProbeData, batch: int = 32) -> float:
    """PER (%) for PR, accuracy (%) for SID, over the whole split."""
    was_training = probe.training
    probe.eval()
    if task == "sid":
        value = accuracy(probe.forward_pooled(data.states.pooled), data.labels)
    else:
        hyps, refs = [], []
        for index, hidden, lengths in data.length_batches(batch):
            hyps += ctc_greedy_decode(probe(data.as_float32(hidden)), lengths)
            refs += [data.labels[i].tolist() for i in index]
        value = phone_error_rate(hyps, refs)
    probe.train(was_training)
    return value


def better(task: str, a: float, b: float) -> bool:
    """Is dev metric a better than b? (PER: lower; accuracy: higher)."""
    return a < b if task == "pr" else a > b


@dataclass
class ProbeRun:
    probe: torch.nn.Module  # holding the best dev state
    best_step: int
    best_dev: float
    dev_history: list[tuple[int, float]]
    log: list[dict]


def train_probe(task: str, train_data: ProbeData, dev_data: ProbeData, num_classes: int, hp: ProbeHParams,
                seed: int = 0, state_path=None, extra: dict | None = None, progress: bool = True) -> ProbeRun:
    """Train a probe with the shared loop; every `hp.eval_every` updates score dev and keep the best state.

    Resumable through `state_path` (the best state and dev history are saved with the loop's state).
    `extra`: identifying fields stored with the state (a resumed run must match them).
    """
    torch.manual_seed(seed)
    probe = make_probe(task, train_data, num_classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=hp.lr)
    n = len(train_data.states)
    batch = min(hp.batch, n)

    def batch_fn(step: int, micro: int):
        if task == "pr":  # s3prl's bucketing: fixed batches of similar lengths, in a new order every epoch
            batches = train_data.length_batches(batch)
            epoch, position = divmod(step * hp.grad_accum + micro, len(batches))
            return batches[np.random.default_rng([seed, epoch]).permutation(len(batches))[position]]
        rng = np.random.default_rng([seed, step, micro])
        return torch.from_numpy(rng.choice(n, size=batch, replace=False))  # an index tensor: no list to convert

    def loss_fn(model, index, step):
        return probe_loss(task, model, train_data, index), {}

    state = {"best": None, "history": [], **(extra or {})}

    def after_step(model, step):
        done = step + 1
        if done % hp.eval_every and done != hp.steps:
            return
        value = probe_metric(task, model, dev_data)
        state["history"].append((done, value))
        if state["best"] is None or better(task, value, state["best"]["dev"]):
            state["best"] = {"step": done, "dev": value,
                             "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}

    lr_fn = None
    if hp.schedule == "linear":
        lr_fn = lambda step: hp.lr * (1.0 - step / hp.steps)  # noqa: E731
    cfg = TrainConfig(total_steps=hp.steps, grad_accum=hp.grad_accum, clip_norm=hp.clip_norm, seed=seed,
                      save_every=hp.eval_every, log_every=max(1, hp.eval_every // 5), desc=f"{task} probe")
    # One thread: the probe's tensors are small, and a second thread mostly adds synchronisation: on a shared
    # 2-core machine the PR probe ran 4x and the SID probe ~50x slower (wall clock) with 2 threads than with 1.
    # (Results do not depend on it.) To use both cores, run two evaluations at once.
    with num_threads(1):
        log = train(probe, optimizer, batch_fn, loss_fn, cfg, state_path=state_path, lr_fn=lr_fn,
                    after_step=after_step, extra_state=state, progress=progress)
    best = state["best"]
    probe.load_state_dict(best["state_dict"])
    probe.eval()
    return ProbeRun(probe=probe, best_step=best["step"], best_dev=best["dev"],
                    dev_history=[tuple(h) for h in state["history"]], log=log)


# ---------------------------------------------------------------------------------------------------------
# One evaluation: upstream x task
# ---------------------------------------------------------------------------------------------------------
def load_task_data(task: str, upstream: Upstream, data_dir, cache_dir, max_cache_gb: float = DEFAULT_CACHE_GB,
                   progress: bool = True):
    """(train, dev, test) ProbeData, number of classes, class names, seconds spent computing hidden states,
    and which splits came from the cache (`progress`: the hidden states' progress bars)."""
    from compress_lib.data.manifest import PHONES, read_split

    splits = SPLITS[task]
    utterances = [read_split(data_dir, s) for s in splits]
    if task == "pr":
        labels = [phone_labels(u, PHONES) for u in utterances]
        classes = ["<blank>", *PHONES]
    else:
        classes, labels = speaker_labels(*utterances)
    t0 = time.perf_counter()
    data, hits = [], {}
    for split, split_labels in zip(splits, labels):
        states, hit = hidden_states_for_split(upstream, data_dir, split, cache_dir, keep_frames=(task == "pr"),
                                              max_cache_gb=max_cache_gb, progress=progress)
        hits[split] = hit
        data.append(ProbeData(states=states, labels=align_labels(states, split_labels)))
    return data, classes, time.perf_counter() - t0, hits


def evaluate_upstream(task: str, upstream: Upstream, data_dir, preset: str, out_dir, cache_dir=None, seed: int = 0,
                      hparams: ProbeHParams | None = None, max_cache_gb: float = DEFAULT_CACHE_GB,
                      progress: bool = True, threads: int = 1) -> dict:
    """Train the `task` probe on `upstream`, select on dev, score test; write out_dir/<task>.json and return it.

    Rerunning with the same arguments resumes (or reuses) the probe training state in out_dir.
    threads: intra-op threads of the upstream forward (the probe always uses one). One is fastest on a busy
    machine; to use several cores, run several evaluations at once.

    The task's files in out_dir are locked while it runs (`.<task>.lock`, see compress_lib.locking): a second
    evaluation of the same task into the folder fails at once; the other task may share the folder.
    """
    check_choice(task, TASKS, "task")
    check_preset(preset)
    hp = hparams or DOWNSTREAM_PRESETS[preset][task]
    out_dir = Path(out_dir)
    with folder_lock(out_dir, what=f"evaluate {task}", lock_name=f".{task}.lock", temp_files=(f".{task}[._]*.tmp",)):
        return _evaluate_in_locked_folder(task, upstream, data_dir, preset, out_dir, cache_dir, seed, hp,
                                          max_cache_gb, progress, threads)


def _evaluate_in_locked_folder(task: str, upstream: Upstream, data_dir, preset: str, out_dir: Path, cache_dir,
                               seed: int, hp: ProbeHParams, max_cache_gb: float, progress: bool,
                               threads: int) -> dict:
    """The body of `evaluate_upstream`, run while the task's lock of out_dir is held."""
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "hidden_cache"
    t_start, cpu_start = time.perf_counter(), time.process_time()
    with num_threads(threads):
        (train_data, dev_data, test_data), classes, seconds_hidden, hits = load_task_data(
            task, upstream, data_dir, cache_dir, max_cache_gb, progress)
    cpu_hidden = time.process_time() - cpu_start

    identity = {"upstream_key": upstream.key, "hparams": dataclasses.asdict(hp), "seed": seed,
                "num_classes": len(classes)}
    state_path = out_dir / f"{task}_state.pt"
    _check_resumable(state_path, identity)
    t_probe, cpu_probe = time.perf_counter(), time.process_time()
    run = train_probe(task, train_data, dev_data, len(classes), hp, seed=seed, state_path=state_path,
                      extra=identity, progress=progress)
    test_value = probe_metric(task, run.probe, test_data)
    seconds_probe, cpu_probe = time.perf_counter() - t_probe, time.process_time() - cpu_probe
    write_log_csv(run.log, out_dir / f"{task}_log.csv")

    result = {
        "task": task,
        "metric": METRIC[task],
        "unit": "%",
        "model": upstream.name,
        "method": upstream.method,
        "frame_ms": upstream.frame_ms,
        "num_layers": upstream.num_layers,
        "upstream_key": upstream.key,
        "preset": preset,
        "seed": seed,
        "hparams": dataclasses.asdict(hp),
        "test": test_value,
        "dev": run.best_dev,
        "best_step": run.best_step,
        "dev_history": run.dev_history,
        "layer_weights": run.probe.weighted_sum.layer_weights(),
        "num_classes": len(classes),
        "num_utterances": {s: len(d.states) for s, d in zip(SPLITS[task], (train_data, dev_data, test_data))},
        "cache_hit": hits,
        # wall-clock and CPU seconds (this process; the CPU time does not grow when other jobs share the cores)
        "seconds": {"hidden_states": seconds_hidden, "probe": seconds_probe, "total": time.perf_counter() - t_start,
                    "cpu_hidden_states": cpu_hidden, "cpu_probe": cpu_probe,
                    "cpu_total": time.process_time() - cpu_start, "threads": threads},
    }
    write_text_atomic(out_dir / f"{task}.json", json.dumps(result, indent=2) + "\n")
    return result


def finished_evaluation(out_dir, upstream_key: str, task: str, preset: str, seed: int,
                        hparams: ProbeHParams) -> dict | None:
    """The finished result (`out_dir/<task>.json`) of exactly this evaluation, else None: the same upstream
    content (`Upstream.key`), preset, seed and probe settings; a result of anything else is not reused."""
    path = Path(out_dir) / f"{task}.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    same = (result.get("upstream_key") == upstream_key and result.get("preset") == preset
            and result.get("seed") == seed and result.get("hparams") == dataclasses.asdict(hparams))
    return result if same else None


def _check_resumable(state_path: Path, identity: dict) -> None:
    if not state_path.exists():
        return
    extra = safe_torch_load(state_path, "probe training state").get("extra", {})
    check_same_settings({k: extra.get(k) for k in identity}, identity, f"{state_path} belongs to another evaluation",
                        "use a fresh --out folder or delete it")


def tune_probe(task: str, upstream: Upstream, data_dir, candidates: list[ProbeHParams], cache_dir, seed: int = 0,
               progress: bool = False) -> list[dict]:
    """Dev metric of each candidate setting (how the `study` preset was chosen; never looks at test).

    Returns one dict per candidate: its hyperparameters, best dev metric, best step, seconds.
    """
    (train_data, dev_data, _), classes, _, _ = load_task_data(task, upstream, data_dir, cache_dir)
    rows = []
    for hp in candidates:
        t0 = time.perf_counter()
        run = train_probe(task, train_data, dev_data, len(classes), hp, seed=seed, progress=progress)
        rows.append({**dataclasses.asdict(hp), "dev": run.best_dev, "best_step": run.best_step,
                     "seconds": time.perf_counter() - t0})
    return rows


# ---------------------------------------------------------------------------------------------------------
# The results-table row of an evaluation
# ---------------------------------------------------------------------------------------------------------
def summary_row(upstream: Upstream, result: dict, counts: bool = True, timed: bool = False) -> dict:
    """The summary.csv cells an evaluation fills: identity, density, its metric, and with `counts` the model's
    size (parameters, non-zero parameters, MACs per second: properties of the model, the same whoever counts).
    `timed` also measures its real-time factor: the command line's `evaluate` of a single model does; in the
    study the efficiency notebook (09) alone times the models, all in one interleaved pass (`compress_lib.results`
    says which step writes which column)."""
    row = {"model": upstream.name, "method": upstream.method, "frame_ms": upstream.frame_ms,
           METRIC[result["task"]]: round(result["test"], 4)}
    if upstream.method in ("dense", "random-init"):
        row["density"] = 1.0
    elif upstream.meta.get("density") is not None:
        row["density"] = float(upstream.meta["density"])
    if upstream.method != "random-init" and upstream.meta.get("pretrain_loss") is not None:
        row["pretrain_loss"] = float(upstream.meta["pretrain_loss"])
    if counts or timed:
        row.update(efficiency_columns(upstream, timed))
    return row


def efficiency_columns(upstream: Upstream, timed: bool = False) -> dict:
    """params / nonzero_params / macs_per_second of the upstream (masks honoured, truncation applied), and with
    `timed` its real_time_factor (`compress_lib.efficiency.profile_model`); the log-Mel baseline has no
    parameters (and its feature cost is not a model's)."""
    if upstream.method == "fbank":
        return {"params": 0, "nonzero_params": 0}
    if upstream.method == "int8":  # an ONNX Runtime session: its cost is the deployment notebook's (14) to measure
        return {}
    if timed:
        stats = profile_model(upstream.model, masks=upstream.masks, num_layers=upstream.num_layers)
        return {k: stats[k] for k in ("params", "nonzero_params", "macs_per_second", "real_time_factor")}
    sizes = count_parameters(upstream.model, upstream.masks, upstream.num_layers)
    return {"params": sizes["params"], "nonzero_params": sizes["nonzero"],
            "macs_per_second": macs_per_second(upstream.model, upstream.masks, upstream.num_layers)}


# ---------------------------------------------------------------------------------------------------------
# Many evaluations at once (one per CPU core)
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationJob:
    """One `evaluate_upstream` call, described by values that cross a process boundary."""

    task: str
    spec: str  # as `load_upstream` takes it: checkpoint path, random-init:<path>, fbank or a zoo name
    out_dir: str
    frame_ms: int | None = None  # for fbank
    name: str | None = None
    hparams: ProbeHParams | None = None  # None: the preset's


def _run_job(job: EvaluationJob, data_dir: str, preset: str, cache_dir: str | None, seed: int) -> dict:
    from compress_lib.downstream.upstream import load_upstream

    upstream = load_upstream(job.spec, frame_ms=job.frame_ms, seed=seed, name=job.name)
    return evaluate_upstream(job.task, upstream, data_dir, preset, job.out_dir, cache_dir=cache_dir, seed=seed,
                             hparams=job.hparams, progress=False, threads=1)


def evaluate_many(jobs: list[EvaluationJob], data_dir, preset: str, cache_dir=None, seed: int = 0,
                  processes: int = 1, progress: bool = True) -> list[dict]:
    """Run `jobs` (each one evaluation with one thread) in `processes` worker processes; results in job order.

    Each job is exactly `evaluate_upstream(..., threads=1)`, so the results do not depend on `processes`; on a
    2-core machine two processes finish a sweep about twice as fast as one process with two threads (the probes
    are too small for intra-op parallelism). Workers are spawned (not forked), so a notebook kernel is safe.
    """
    args = (str(data_dir), preset, None if cache_dir is None else str(cache_dir), seed)
    if processes <= 1 or len(jobs) <= 1:
        return [_run_job(job, *args) for job in _progress(jobs, progress)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_job, job, *args) for job in jobs]
        for future in _progress(futures, progress, as_completed=True):
            future.result()  # re-raises a worker's error here, with its message
        return [f.result() for f in futures]


def _progress(items, enabled: bool, as_completed: bool = False):
    from tqdm.auto import tqdm

    if as_completed:
        from concurrent.futures import as_completed as completed

        return tqdm(completed(items), total=len(items), desc="evaluations", disable=not enabled)
    return tqdm(items, desc="evaluations", disable=not enabled)
