"""Upstreams for the downstream probes, and the content-keyed cache of their hidden states.

An upstream turns each utterance of a split into its stack of hidden states (L, T, D): L = k + 1 for a
MelHuBERT run through k layers (projected input + each layer), L = 1 for the log-Mel "upstream" (SUPERB's
FBANK row, the floor baseline). Kinds (`load_upstream(spec)`):

    path/to/model.pt         a compress_lib checkpoint: dense, pruned (masks already applied), student, ...;
                             truncated to meta["num_layers"] (or --num-layers) layers
    random-init:path.pt      the untrained twin: MelHuBERT(that checkpoint's config) initialised with a fixed seed
    int8:path/to/model.pt    that checkpoint exported to ONNX with int8 weights, run by ONNX Runtime
                             (`compress_lib.efficiency.deploy`): the quality cost of int8, measured
    fbank                    the normalised log-Mel input features themselves
    <zoo name>               a model of `compress_lib.zoo` (16 kHz waveform in; random weights, efficiency only)

Upstreams are frozen, so their hidden states are computed once per (upstream content, split) and cached on
disk: `hidden_states_for_split` keys the cache by the SHA-256 of the checkpoint bytes (or of the config and
seed for a random-init twin), the number of layers run, and the key of the split's inputs (manifest, audio
and the normalisation statistics, `compress_lib.data.features.features_key`). Frame-level
states are stored as float16, utterances concatenated, and loaded memory-mapped; per-layer means over frames
(all the SID probe needs, see `probes.py`) are stored as float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import onnxruntime
import torch
from tqdm.auto import tqdm

from compress_lib.checkpoint import atomic_torch_save, load_checkpoint
from compress_lib.efficiency.deploy import INT8_RUNTIME, int8_encoder
from compress_lib.errors import CompressLibError
from compress_lib.files import file_sha256
from compress_lib.locking import remove_stale_temp_files
from compress_lib.model import MelHuBERT

CACHE_VERSION = 1
RANDOM_INIT_PREFIX = "random-init:"
INT8_PREFIX = "int8:"
DEFAULT_CACHE_GB = 20.0  # least recently used cache files are deleted beyond this


# ---------------------------------------------------------------------------------------------------------
# Hidden states of one split
# ---------------------------------------------------------------------------------------------------------
@dataclass
class HiddenStates:
    """Hidden states of every utterance of a split, as cached.

    `frames` holds all utterances concatenated along time, layer-major (L, sum of lengths, D) float16, or None
    when only the per-layer means were cached; utterance i is `frames[:, offsets[i] : offsets[i] + lengths[i]]`.
    """

    ids: list[str]
    lengths: torch.Tensor  # (N,) frames per utterance
    pooled: torch.Tensor  # (N, L, D) float32: per-layer mean over each utterance's frames
    frames: torch.Tensor | None = None  # (L, sum of lengths, D) float16
    frame_ms: int = 20

    @property
    def num_layers(self) -> int:
        return self.pooled.shape[1]  # pooled: (N, L, D)

    @property
    def dim(self) -> int:
        return self.pooled.shape[2]

    @property
    def offsets(self) -> torch.Tensor:
        return torch.cumsum(self.lengths, 0) - self.lengths  # (N,)

    def __len__(self) -> int:
        return len(self.ids)

    def padded_batch(self, index: list[int], dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level states of utterances `index`, zero-padded: (B, L, T_max, D) and lengths (B,)."""
        if self.frames is None:
            raise ValueError("these hidden states were cached as per-layer means only")
        lengths = self.lengths[index]
        starts = self.offsets[index]
        out = torch.zeros(len(index), self.num_layers, int(lengths.max()), self.dim, dtype=dtype)
        for b, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
            out[b, :, :n] = self.frames[:, s : s + n]
        return out, lengths

    def length_batches(self, batch_size: int) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """Utterances sorted by length, cut into batches of `batch_size` and padded once (s3prl's bucketing):
        a list of (index, float16 states (B, L, T_max, D), lengths (B,)). Padding is small (similar lengths)
        and a training step only converts a contiguous batch to float32."""
        order = torch.argsort(self.lengths, descending=True, stable=True).tolist()
        batches = []
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batches.append((index, *self.padded_batch(index, dtype=torch.float16)))
        return batches


def stack_hidden_states(ids: list[str], encoded, frame_ms: int, keep_frames: bool) -> HiddenStates:
    """Collect (index, hidden states (L, T_i, D) float32) pairs into a HiddenStates.

    The per-layer means are taken in float32; frames are kept (as float16) only if `keep_frames`.
    """
    n = len(ids)
    lengths = torch.zeros(n, dtype=torch.long)
    means: list[torch.Tensor | None] = [None] * n
    frames: list[torch.Tensor | None] = [None] * n
    for i, h in encoded:
        if h.shape[1] == 0:
            raise CompressLibError(
                f"utterance {ids[i]} has no frames; it is too short for this upstream, drop it from the corpus"
            )
        lengths[i] = h.shape[1]
        means[i] = h.float().mean(1)  # (L, D)
        if keep_frames:
            frames[i] = h.half()
            if not torch.isfinite(frames[i]).all():
                raise CompressLibError(f"hidden states of utterance {ids[i]} are not finite in float16 (|h| > 65504 "
                                       "or NaN); the upstream checkpoint is broken")
    missing = [ids[i] for i in range(n) if means[i] is None]
    if missing:
        raise RuntimeError(f"no hidden states for {len(missing)} utterances (first: {missing[0]})")
    return HiddenStates(ids=list(ids), lengths=lengths, pooled=torch.stack(means),
                        frames=torch.cat(frames, dim=1) if keep_frames else None, frame_ms=frame_ms)


# ---------------------------------------------------------------------------------------------------------
# Upstreams
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Upstream:
    """A frozen encoder from utterances to hidden states (L, T, D), layer-major.

    `input_kind` is "feats" (normalised log-Mel frames at `frame_ms`, from `compress_lib.data.features`) or
    "wave" (16 kHz waveforms). `key` identifies the encoder's content for the hidden-state cache.
    """

    name: str  # row name in the results table
    method: str  # dense, weight, heads, ffn, distill, truncate, combined, ... or fbank / random-init / zoo
    key: str
    frame_ms: int
    input_kind: str = "feats"
    model: torch.nn.Module | None = None
    masks: dict | None = None
    num_layers: int | None = None  # layers run (truncation); None = all
    meta: dict = field(default_factory=dict)
    batch_frames: int = 2_000  # padded frames per forward batch (larger batches were slower on 2 CPU cores)

    def encode(self, inputs: list[torch.Tensor], desc: str = "hidden states",
               progress: bool = True) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (index, hidden states (L, T_i, D) float32) for every input, in an order that batches well; a
        progress bar on stderr unless `progress` is False."""
        if self.method == "fbank":
            for i, x in enumerate(inputs):
                yield i, x.float()[None]  # (1, T, F)
        elif self.input_kind == "feats":  # a MelHuBERT, or its ONNX Runtime export (called like it)
            yield from _encode_melhubert(self.model, inputs, self.num_layers, self.batch_frames, desc, progress)
        else:
            yield from self._encode_waveforms(inputs, desc, progress)

    def _encode_waveforms(self, inputs, desc, progress):
        for i, wave in enumerate(tqdm(inputs, desc=desc, leave=False, dynamic_ncols=True, disable=not progress)):
            with torch.inference_mode():
                hidden = self.model(wave.float()[None], num_layers=self.num_layers)  # L x (1, T, D)
            yield i, torch.stack([h[0] for h in hidden]).float()  # (L, T, D)


def _encode_melhubert(model, feats: list[torch.Tensor], num_layers, batch_frames: int, desc: str,
                      progress: bool = True):
    """Batched forward of a MelHuBERT over utterances sorted by length (padding masked; results per utterance)."""
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: -feats[i].shape[0])
    batches, current = [], []
    for i in order:  # longest first: a batch's padded size is its first length times its size
        if current and feats[current[0]].shape[0] * (len(current) + 1) > batch_frames:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    for batch in tqdm(batches, desc=desc, leave=False, dynamic_ncols=True, disable=not progress):
        lengths = torch.tensor([feats[i].shape[0] for i in batch])
        x = torch.nn.utils.rnn.pad_sequence([feats[i].float() for i in batch], batch_first=True)  # (B, T, F)
        padding_mask = torch.arange(x.shape[1])[None, :] >= lengths[:, None]  # (B, T)
        with torch.inference_mode():
            out = model(x, padding_mask=padding_mask, num_layers=num_layers, compute_logits=False)
        hidden = torch.stack(out.hidden_states, dim=1)  # (B, L, T, D)
        for b, i in enumerate(batch):
            yield i, hidden[b, :, : lengths[b]].clone()


def load_upstream(spec: str, frame_ms: int | None = None, num_layers: int | None = None, seed: int = 0,
                  name: str | None = None) -> Upstream:
    """Resolve `--upstream`: a checkpoint path, `random-init:<checkpoint>`, `fbank` or a zoo model name.

    frame_ms: only for `fbank` (default 20); a checkpoint's own frame rate is used otherwise (and must match
        if given). num_layers: run only the first k layers (default: the checkpoint's meta["num_layers"], else all).
    name: the results-table name; by default the model's own, with " (first k layers)" appended when num_layers
        truncates it to other than its own depth (`truncated_model_name`), so the rows of
        differently truncated evaluations never replace each other.
    """
    if spec == "fbank":
        frame_ms = frame_ms or 20
        return Upstream(name=name or "fbank", method="fbank", key=f"fbank-v1-{frame_ms}ms", frame_ms=frame_ms)
    if spec.startswith(RANDOM_INIT_PREFIX):
        return _random_init_twin(spec, frame_ms, num_layers, seed, name)
    if spec.startswith(INT8_PREFIX):
        return _int8_upstream(spec, frame_ms, num_layers, name)
    path = Path(spec)
    if path.suffix in (".pt", ".pth", ".ckpt") or path.exists():
        ckpt = load_checkpoint(_existing(spec))
        cfg = ckpt.model.cfg
        layers = _num_layers(num_layers, ckpt.meta, cfg.num_layers)
        own_layers = _num_layers(None, ckpt.meta, cfg.num_layers)
        return Upstream(name=name or _layers_name(default_name(path, ckpt.meta), layers, own_layers),
                        method=checkpoint_method(ckpt.meta), key=f"{file_sha256(path)}-L{layers}",
                        frame_ms=_frame_ms(cfg.frame_ms, frame_ms, spec), model=ckpt.model, masks=ckpt.masks,
                        num_layers=layers, meta=dict(ckpt.meta))
    return _load_zoo_upstream(spec, name, num_layers, seed)


def _random_init_twin(spec: str, frame_ms: int | None, num_layers: int | None, seed: int,
                      name: str | None) -> Upstream:
    """`random-init:<checkpoint>`: the checkpoint's architecture, untrained. When the checkpoint is a pretraining
    run's model and the run saved its initial weights (`random_init.pt` beside it, same architecture), the twin
    is exactly those weights: the control then measures what pretraining changed in this very model. Otherwise
    the weights are a fresh initialisation from `seed`."""
    path = _existing(spec[len(RANDOM_INIT_PREFIX):])
    ckpt = load_checkpoint(path)
    cfg = ckpt.model.cfg
    layers = _num_layers(num_layers, ckpt.meta, cfg.num_layers)
    name = name or _layers_name("random-init", layers, _num_layers(None, ckpt.meta, cfg.num_layers))
    initial = path.parent / "random_init.pt"
    twin = load_checkpoint(initial) if initial.is_file() and initial.resolve() != path.resolve() else None
    if twin is not None and twin.model.cfg == cfg and twin.meta.get("steps") == 0:
        model, key, meta = twin.model, file_sha256(initial), {"twin_of": str(path), "weights": str(initial)}
    else:
        torch.manual_seed(seed)
        model = MelHuBERT(cfg)
        key = _sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode(), f"seed={seed}".encode())
        meta = {"seed": seed, "twin_of": str(path)}
    return Upstream(name=name, method="random-init", key=f"{key}-L{layers}",
                    frame_ms=_frame_ms(cfg.frame_ms, frame_ms, spec), model=model.eval(), num_layers=layers,
                    meta=meta)


def _int8_upstream(spec: str, frame_ms: int | None, num_layers: int | None, name: str | None) -> Upstream:
    """`int8:<checkpoint>`: the checkpoint (as `load_upstream` reads it) exported to ONNX with a padding-mask input,
    its weights quantized to int8, run by ONNX Runtime on one thread. The int8 file is cached beside the checkpoint
    (`.cache/int8.<key>.onnx`, keyed like the hidden states: checkpoint content, layers, ONNX Runtime version), so
    the evaluations of both tasks export it once; a folder that cannot be written gets a temporary copy."""
    path = spec[len(INT8_PREFIX):]
    base = load_upstream(path, frame_ms, num_layers)
    if not isinstance(base.model, MelHuBERT):
        raise CompressLibError(f"{spec}: int8 evaluation takes a compress_lib checkpoint (a MelHuBERT), not "
                               f"{base.method}")
    key = int8_key(base)
    cached = Path(path).parent / ".cache" / f"int8.{_sha256(key.encode())[:16]}.onnx"
    try:
        cached.parent.mkdir(exist_ok=True)
        encoder = int8_encoder(base.model, cached, base.num_layers, padding_mask=True)
    except OSError:
        with tempfile.TemporaryDirectory(prefix="compress-lib-int8-") as folder:
            encoder = int8_encoder(base.model, Path(folder) / cached.name, base.num_layers, padding_mask=True)
    return Upstream(name=name or f"{base.name} (int8)", method="int8", key=key, frame_ms=base.frame_ms,
                    model=encoder, num_layers=base.num_layers,
                    meta={**base.meta, "base_method": base.method, "runtime": INT8_RUNTIME})


def int8_key(base: Upstream) -> str:
    """The content key of `int8:<checkpoint>`: the checkpoint's key and the ONNX Runtime version that quantizes
    and runs it (known without exporting anything)."""
    return f"int8-ort{onnxruntime.__version__}-{base.key}"


def _load_zoo_upstream(spec: str, name: str | None, num_layers: int | None, seed: int) -> Upstream:
    from compress_lib.zoo import build_zoo_model, frames_per_second

    try:
        model = build_zoo_model(spec, seed=seed)
    except CompressLibError as exc:
        raise CompressLibError(
            f"--upstream {spec!r} is not an existing checkpoint file, fbank, random-init:<checkpoint> or a zoo "
            f"model ({exc})"
        ) from None
    layers = _num_layers(num_layers, {}, model.cfg.num_layers)
    return Upstream(name=name or _layers_name(spec, layers, model.cfg.num_layers), method="zoo",
                    key=f"zoo-{spec}-{state_dict_sha256(model)}-L{layers}",
                    frame_ms=round(1000 / frames_per_second(model.cfg)), input_kind="wave", model=model,
                    num_layers=layers, meta={"zoo": spec, "seed": seed})


def truncated_model_name(name: str, num_layers: int) -> str:
    """The table's name of a model run through its first `num_layers` layers only: "dense (first 2 layers)"."""
    return f"{name} (first {num_layers} layer{'' if num_layers == 1 else 's'})"


def _layers_name(name: str, layers: int, own_layers: int) -> str:
    """A default name, marked with the layer count when the evaluation runs other than the model's own depth."""
    return name if layers == own_layers else truncated_model_name(name, layers)


def _existing(path: str) -> Path:
    """The checkpoint file at `path`; a missing or damaged trajectory point is an error naming the command that
    rebuilds it."""
    from compress_lib.compression.trajectory import check_trajectory_point

    p = Path(path)
    check_trajectory_point(p)
    if not p.is_file():
        raise CompressLibError(f"checkpoint {p} does not exist; check the path given to --upstream")
    return p


def _num_layers(requested: int | None, meta: dict, total: int) -> int:
    layers = requested if requested is not None else meta.get("num_layers", total)
    if not 0 <= int(layers) <= total:
        raise CompressLibError(f"--num-layers must be in 0..{total} for this checkpoint, got {layers}")
    return int(layers)


def _frame_ms(model_ms: int, requested: int | None, spec: str) -> int:
    if requested is not None and requested != model_ms:
        raise CompressLibError(f"{spec} is a {model_ms} ms model but --frame-ms {requested} was given; drop --frame-ms")
    return model_ms


def checkpoint_method(meta: dict) -> str:
    """meta["method"] (set by compression); a model trained for 0 steps is a random-init twin; else dense."""
    if meta.get("method"):
        return str(meta["method"])
    return "random-init" if meta.get("steps") == 0 else "dense"


def default_name(path: Path, meta: dict) -> str:
    """The results-table name of a checkpoint: meta["name"]; `dense` for a model no compression produced; a
    compression point as `<method>-<density>` (`weight-0.5`, `heads-0.333`); else the file (or folder) name."""
    if meta.get("name"):
        return str(meta["name"])
    method = checkpoint_method(meta)
    if method == "random-init":
        return "random-init"
    if method == "dense":
        return "dense"
    if meta.get("density") is not None:
        return f"{method}-{float(meta['density']):.4g}"
    if meta.get("index") is not None:
        return f"{method}-{meta['index']}"
    return path.resolve().parent.name if path.stem in ("model", "checkpoint", "final", "best") else path.stem


# ---------------------------------------------------------------------------------------------------------
# Content keys and the on-disk cache
# ---------------------------------------------------------------------------------------------------------
def _sha256(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()




def state_dict_sha256(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def input_key(upstream: Upstream, data_dir, split: str) -> str:
    """Identifies the upstream's inputs of a split: the normalised features (audio, manifest and the pretrain
    statistics they are normalised with) or, for a waveform model, the audio and manifest."""
    from compress_lib.data.features import audio_key, features_key

    return audio_key(data_dir, split) if upstream.input_kind == "wave" else features_key(data_dir, split)


def cache_path(cache_dir, upstream: Upstream, data_dir, split: str, keep_frames: bool) -> Path:
    kind = "frames" if keep_frames else "pooled"
    key = _sha256(f"v{CACHE_VERSION}|{upstream.key}|{split}|{kind}|{input_key(upstream, data_dir, split)}".encode())
    return Path(cache_dir) / f"{split}-{kind}-{key[:24]}.pt"


def hidden_states_for_split(upstream: Upstream, data_dir, split: str, cache_dir, keep_frames: bool,
                            max_cache_gb: float = DEFAULT_CACHE_GB, progress: bool = True) -> tuple[HiddenStates, bool]:
    """Hidden states of every utterance of `split` (from the cache when present). Returns (states, cache_hit).

    keep_frames: cache frame-level states (PR) or only the per-layer means (SID).
    """
    path = cache_path(cache_dir, upstream, data_dir, split, keep_frames)
    if path.is_file():
        obj = _load_cache(path)
        if obj is not None:
            os.utime(path)  # recently used: evicted last
            return _states_from_cache(obj), True
    remove_stale_temp_files(cache_dir, f".{split}-*.tmp")  # left by a killed evaluation (shared folder: by age)
    ids, inputs = _load_inputs(upstream, data_dir, split)
    encoded = upstream.encode(inputs, desc=f"{upstream.name} {split}", progress=progress)
    states = stack_hidden_states(ids, encoded, upstream.frame_ms, keep_frames)
    atomic_torch_save({"version": CACHE_VERSION, "key": upstream.key, "ids": states.ids, "lengths": states.lengths,
                       "pooled": states.pooled, "frame_ms": states.frame_ms,
                       **({"frames": states.frames} if keep_frames else {})}, path)
    evict_cache(cache_dir, max_bytes=int(max_cache_gb * 2**30), keep=path)
    return _states_from_cache(_load_cache(path)), False  # memory-mapped: the frames need not stay in memory


def _states_from_cache(obj: dict) -> HiddenStates:
    return HiddenStates(ids=obj["ids"], lengths=obj["lengths"], pooled=obj["pooled"], frames=obj.get("frames"),
                        frame_ms=obj["frame_ms"])


def _load_cache(path: Path) -> dict | None:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # truncated or foreign file: recompute
        return None
    if not isinstance(obj, dict) or obj.get("version") != CACHE_VERSION:
        return None
    return obj


def _load_inputs(upstream: Upstream, data_dir, split: str) -> tuple[list[str], list[torch.Tensor]]:
    """Utterance ids and the upstream's inputs: log-Mel frames (T, F) or 16 kHz waveforms (S,)."""
    if upstream.input_kind == "wave":
        from compress_lib.data.audio import load_audio
        from compress_lib.data.manifest import read_split

        utterances = read_split(data_dir, split)
        waves = []
        for u in utterances:
            path = Path(u.path)
            waves.append(torch.as_tensor(load_audio(path), dtype=torch.float32))
        return [u.id for u in utterances], waves
    from compress_lib.data.features import load_features

    fs = load_features(data_dir, split, upstream.frame_ms)
    return [u.id for u in fs.utterances], [torch.as_tensor(f) for f in fs.feats]


def evict_cache(cache_dir, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used cache files until the folder holds at most `max_bytes`; returns them."""
    files = sorted(Path(cache_dir).glob("*.pt"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    removed = []
    for p in files:
        if total <= max_bytes:
            break
        if keep is not None and p.resolve() == Path(keep).resolve():
            continue
        total -= p.stat().st_size
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed
