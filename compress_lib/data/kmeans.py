"""Targets of MelHuBERT's masked prediction: k-means cluster ids of each frame of the `pretrain` split.

- Stage 1: K clusters of the normalised 40-dim log-Mel frames at 10 ms. A 20 ms model predicts, for stacked
  frame t (= 10 ms frames 2t and 2t+1), the label of frame 2t.
- Stage 2: K clusters of `hidden_states[layer]` of a given (stage-1) MelHuBERT, at the model's frame rate.

Clusters are fit with scikit-learn's `MiniBatchKMeans` (seeded) on at most `MAX_FIT_FRAMES` frames drawn at
random, then every frame is labelled. Labels are cached beside the features they came from
(`DIR/.cache/kmeans.<stage>.<key>.pt`), keyed by the features, the model's weights (stage 2), the layer,
K and the seed, and record what they were fit on.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from compress_lib.checkpoint import atomic_torch_save, safe_torch_load
from compress_lib.config import FRAME_MS_CHOICES
from compress_lib.data.features import cache_dir, features_key, load_features
from compress_lib.errors import CompressLibError, check_choice
from compress_lib.threads import num_threads

MAX_FIT_FRAMES = 200_000  # frames sampled to fit the centroids (all frames are labelled)
KMEANS_OPTIONS = dict(batch_size=4096, max_iter=100, n_init=3, max_no_improvement=20, reassignment_ratio=0.01)
FORWARD_FRAMES_PER_BATCH = 8000  # stage 2: padded frames per forward pass
KMEANS_VERSION = 1


def fit_kmeans(frames: torch.Tensor, num_clusters: int, seed: int, max_fit_frames: int = MAX_FIT_FRAMES):
    """Fit MiniBatchKMeans on (at most `max_fit_frames` random rows of) frames (N, D); returns the model.

    Runs on one thread: scikit-learn's OpenMP threads made it 40x slower on a busy 2-core machine.
    """
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    if frames.shape[0] < num_clusters:
        raise CompressLibError(
            f"k-means with {num_clusters} clusters needs at least {num_clusters} frames, the pretrain split has "
            f"{frames.shape[0]}; generate a larger corpus (--scale) or use fewer clusters"
        )
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(frames.shape[0], size=min(max_fit_frames, frames.shape[0]), replace=False))
    data = frames[torch.from_numpy(rows)].float().numpy()
    model = MiniBatchKMeans(n_clusters=num_clusters, random_state=seed, **KMEANS_OPTIONS)
    with threadpool_limits(limits=1):
        return model.fit(data)


def assign(model, frames: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Nearest-centroid ids (N,) of frames (N, D), in chunks, on one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        labels = [model.predict(frames[i : i + chunk].float().numpy()) for i in range(0, frames.shape[0], chunk)]
    return torch.from_numpy(np.concatenate(labels).astype(np.int64))


def _check_args(num_clusters: int, frame_ms: int) -> None:
    check_choice(frame_ms, FRAME_MS_CHOICES, "frame rate (ms)")
    if num_clusters < 2:
        raise CompressLibError(f"k-means needs at least 2 clusters, got {num_clusters}")


def _cached_labels(path: Path, lengths: list[int]) -> list[torch.Tensor] | None:
    if not path.is_file():
        return None
    cached = safe_torch_load(path, "k-means labels")
    if cached.get("lengths") != lengths:
        return None
    return list(torch.split(cached["labels"], lengths))


def _labels_path(data_dir, stage: str, feats_key: str, key: str) -> Path:
    return cache_dir(data_dir) / f"kmeans.{stage}.{feats_key}.{key}.pt"


def _save_labels(path: Path, labels: torch.Tensor, lengths: list[int], meta: dict) -> list[torch.Tensor]:
    """Cache labels; drop this stage's labels of features that no longer exist (other K / seeds are kept)."""
    stage, feats_key = path.name.split(".")[1:3]
    for stale in path.parent.glob(f"kmeans.{stage}.*.pt"):
        if stale.name.split(".")[2] != feats_key:
            stale.unlink(missing_ok=True)
    atomic_torch_save({"labels": labels, "lengths": lengths, "meta": meta}, path)
    return list(torch.split(labels, lengths))


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def stage1_targets(data_dir: str | os.PathLike, num_clusters: int, seed: int, frame_ms: int) -> list[torch.Tensor]:
    """Cluster ids of the pretrain split's log-Mel frames, aligned with
    `load_features(data_dir, "pretrain", frame_ms).feats`: (T_i,) at 10 ms, (ceil(T_i/2),) at 20 ms."""
    _check_args(num_clusters, frame_ms)
    features = load_features(data_dir, "pretrain", 10)
    lengths = features.lengths
    feats_key = features_key(data_dir, "pretrain")
    key = _key(num_clusters, seed, KMEANS_OPTIONS, MAX_FIT_FRAMES, KMEANS_VERSION)
    path = _labels_path(data_dir, "stage1", feats_key, key)
    labels = _cached_labels(path, lengths)
    if labels is None:
        frames = torch.cat(features.feats)  # (N, 40)
        model = fit_kmeans(frames, num_clusters, seed)
        meta = {
            "stage": 1,
            "source": "normalised 40-bin log-Mel, 10 ms",
            "model": None,
            "layer": None,
            "num_clusters": num_clusters,
            "seed": seed,
            "inertia_per_frame": float(model.inertia_) / min(MAX_FIT_FRAMES, frames.shape[0]),
        }
        labels = _save_labels(path, assign(model, frames), lengths, meta)
    return [lab[0::2].clone() if frame_ms == 20 else lab for lab in labels]


def model_digest(model: torch.nn.Module) -> str:
    """A hash of a model's configuration and every weight (bytes), so retrained weights change the key."""
    h = hashlib.sha256()
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "to_dict"):
        h.update(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


@torch.no_grad()
def hidden_frames(model, feats: list[torch.Tensor], layer: int, progress: bool = True) -> list[torch.Tensor]:
    """hidden_states[layer] of each utterance, (T_i, D), from padded batches of similar length (eval mode).

    One torch thread: a one-off pass, and on a busy 2-core machine two threads ran 10x slower.
    """
    with num_threads(1):
        return _hidden_frames(model, feats, layer, progress)


def _hidden_frames(model, feats: list[torch.Tensor], layer: int, progress: bool) -> list[torch.Tensor]:
    was_training = model.training
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
    out: list[torch.Tensor | None] = [None] * len(feats)
    bar = tqdm(total=len(feats), desc=f"layer {layer} features", unit="utt", disable=not progress)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and feats[order[end]].shape[0] * (end - start + 1) <= FORWARD_FRAMES_PER_BATCH:
            end += 1
        batch = [feats[i] for i in order[start:end]]
        longest = max(f.shape[0] for f in batch)
        x = torch.zeros(len(batch), longest, batch[0].shape[1])  # (B, T, F)
        pad = torch.ones(len(batch), longest, dtype=torch.bool)  # (B, T), True at padding
        for b, f in enumerate(batch):
            x[b, : f.shape[0]] = f
            pad[b, : f.shape[0]] = False
        hidden = model(x, padding_mask=pad, num_layers=layer, compute_logits=False).hidden_states[layer]  # (B, T, D)
        for b, i in enumerate(order[start:end]):
            out[i] = hidden[b, : feats[i].shape[0]].clone()
        bar.update(end - start)
        start = end
    bar.close()
    model.train(was_training)
    return out


def stage2_targets(
    data_dir: str | os.PathLike, model, layer: int, num_clusters: int, seed: int, frame_ms: int
) -> list[torch.Tensor]:
    """Cluster ids of `model`'s hidden_states[layer] over the pretrain split, aligned with
    `load_features(data_dir, "pretrain", frame_ms).feats` (frame_ms must be the model's)."""
    _check_args(num_clusters, frame_ms)
    if frame_ms != model.cfg.frame_ms:
        raise CompressLibError(f"the model reads {model.cfg.frame_ms} ms frames, not {frame_ms} ms; pass its frame_ms")
    if not 0 <= layer <= model.cfg.num_layers:
        raise CompressLibError(f"layer must be in 0..{model.cfg.num_layers} (0 = projected input), got {layer}")
    features = load_features(data_dir, "pretrain", frame_ms)
    lengths = features.lengths
    digest = model_digest(model)
    feats_key = features_key(data_dir, "pretrain")
    key = _key(frame_ms, digest, layer, num_clusters, seed, KMEANS_OPTIONS, MAX_FIT_FRAMES, KMEANS_VERSION)
    path = _labels_path(data_dir, "stage2", feats_key, key)
    labels = _cached_labels(path, lengths)
    if labels is not None:
        return labels
    frames = torch.cat(hidden_frames(model, features.feats, layer))  # (N, D)
    fitted = fit_kmeans(frames, num_clusters, seed)
    meta = {
        "stage": 2,
        "source": f"hidden_states[{layer}] of a MelHuBERT, {frame_ms} ms",
        "model": digest,
        "model_config": model.cfg.to_dict(),
        "layer": layer,
        "num_clusters": num_clusters,
        "seed": seed,
        "inertia_per_frame": float(fitted.inertia_) / min(MAX_FIT_FRAMES, frames.shape[0]),
    }
    return _save_labels(path, assign(fitted, frames), lengths, meta)
