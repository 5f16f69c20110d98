"""Two-stage masked-prediction pretraining of MelHuBERT (paper section IV-A).

    stage 1: targets = k-means of the log-Mel frames            -> stage1/model.pt
    stage 2: targets = k-means of layer l of the stage-1 model   -> stage2/model.pt  (l = 9 of 12, scaled)

Both stages minimise the cross-entropy of the cluster head on masked frames (`objective.py`) with Adam,
gradient accumulation and clipping, through the shared resumable loop (`training.py`). A run folder holds

    OUT/random_init.pt          the untrained twin of the stage-1 model (same seed, same initial weights)
    OUT/stage{1,2}/state.pt     resumable training state (model, optimizer, step, log)
    OUT/stage{1,2}/log.csv      loss, masked-prediction accuracy, learning rate, elapsed seconds per step
    OUT/stage{1,2}/model.pt     the stage's final checkpoint
    OUT/stage2/targets.pt       cache of the stage-2 targets (recomputed if missing)
    OUT/model.pt                the final model (the last stage run)
    OUT/pretrain.json           summary: settings, final losses, training seconds per stage

Rerunning the same command after an interruption resumes; the final weights equal those of an
uninterrupted run. Under `torchrun --nproc_per_node=N` every rank trains on its own crops with
DistributedDataParallel (NCCL on GPUs, gloo on CPU) and only rank 0 writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from compress_lib.checkpoint import atomic_torch_save, load_checkpoint, safe_torch_load, save_checkpoint
from compress_lib.config import MODEL_PRESETS, config_for_preset
from compress_lib.errors import CompressLibError, check_choice, check_same_settings
from compress_lib.files import file_sha256, write_text_atomic
from compress_lib.locking import folder_lock
from compress_lib.model import MelHuBERT
from compress_lib.objective import CropBatcher, masked_prediction_loss, masked_prediction_metrics
from compress_lib.overrides import parse_overrides
from compress_lib.presets import check_preset
from compress_lib.training import TrainConfig, is_main_process, step_seed, train, write_log_csv

SCHEDULES = ("constant", "linear", "cosine")
PRETRAIN_SPLIT = "pretrain"

# Pretraining hyperparameters per preset. A value may be a dict keyed by frame rate (ms); see `pretrain_settings`.
#   stage{1,2}_steps     optimizer updates per stage
#   batch_size           crops per micro-batch (per process)
#   grad_accum           micro-batches per update (divided among the processes under torchrun)
#   crop_frames          maximum frames per crop (longer utterances are randomly cropped)
#   lr, betas            Adam; warmup_steps of linear warm-up, then `schedule` (constant / linear / cosine to 0)
#   clip_norm            gradient clipping (max global L2 norm)
#   save_every           steps between resumable saves
#   stage{1,2}_clusters  K of the k-means targets (the cluster head's size)
#   stage2_layer         layer of the stage-1 model whose features are clustered (None: 9 of 12, scaled)
#   stage2_init          "scratch" (HuBERT / MelHuBERT: a fresh model) or "stage1" (continue from stage 1's weights)
#   stages               the stages a run without --stage trains: (1, 2) is the paper's recipe; (1,) stops after
#                        stage 1 (stage 2 can still be run on its own with --stage 2)
PRETRAIN_PRESETS = {
    "smoke": dict(
        stage1_steps=6, stage2_steps=4, batch_size=2, grad_accum=2, crop_frames={10: 120, 20: 60},
        lr=5e-4, betas=(0.9, 0.98), warmup_steps=2, schedule="linear", clip_norm=10.0, save_every=2,
        stage1_clusters=16, stage2_clusters=16, stage2_layer=None, stage2_init="scratch", stages=(1, 2),
    ),
    # The study's recipe (constant lr 1e-3 after warm-up, stage 1 only) for 800 steps (docs/lab_preset.md).
    "lab": dict(
        stage1_steps=800, stage2_steps=500, batch_size=8, grad_accum=1, crop_frames={10: 400, 20: 200},
        lr=1e-3, betas=(0.9, 0.98), warmup_steps=50, schedule="constant", clip_norm=5.0, save_every=50,
        stage1_clusters=50, stage2_clusters=50, stage2_layer=None, stage2_init="stage1", stages=(1,),
    ),
    # Chosen by measurement on the stand-in corpus (docs/study_preset.md, data/study_search.csv).
    # Stage 1 only: a second stage (K=500 or 100, continuing from stage 1) did not improve the PR probe here.
    # A constant learning rate after warm-up, as the paper's recipe: 1,000 steps decayed linearly to 0 learnt
    # much less than the first 1,000 steps of a longer schedule; 1e-3 beat 5e-4 (PER 31.2 vs 35.6, t6 vs t5b).
    "study": dict(
        stage1_steps=1000, stage2_steps=500, batch_size=8, grad_accum=1, crop_frames={10: 400, 20: 200},
        lr=1e-3, betas=(0.9, 0.98), warmup_steps=100, schedule="constant", clip_norm=5.0, save_every=50,
        stage1_clusters=100, stage2_clusters=100, stage2_layer=None, stage2_init="stage1", stages=(1,),
    ),
    # The paper's recipe (MelHuBERT runner config): Adam lr 1e-4, no scheduler, 4 crops x 8 accumulation = 32
    # utterances per update, clipping 10, crops of 15 s. Steps: 200 epochs of LibriSpeech 960 h (281,241
    # utterances / 32 = 8,789 updates per epoch) for stage 1; stage 2 200 epochs at 10 ms, 100 at 20 ms.
    "paper": dict(
        stage1_steps=1_757_800, stage2_steps={10: 1_757_800, 20: 878_900}, batch_size=4, grad_accum=8,
        crop_frames={10: 1500, 20: 750}, lr=1e-4, betas=(0.9, 0.999), warmup_steps=0, schedule="constant",
        clip_norm=10.0, save_every=5000, stage1_clusters=512, stage2_clusters=512, stage2_layer=9,
        stage2_init="scratch", stages=(1, 2),
    ),
}


# -- settings --------------------------------------------------------------------------------------------------
def pretrain_settings(preset: str, frame_ms: int = 20, **overrides) -> dict:
    """The flat pretraining settings of a preset at a frame rate (per-frame-rate values resolved)."""
    raw = dict(PRETRAIN_PRESETS[check_preset(preset)])
    raw.update(overrides)
    settings = {k: (v[frame_ms] if isinstance(v, dict) else v) for k, v in raw.items()}
    settings["betas"] = tuple(settings["betas"])
    check_choice(settings["schedule"], SCHEDULES, "learning-rate schedule")
    check_choice(settings["stage2_init"], ("scratch", "stage1"), "stage-2 initialisation")
    settings["stages"] = tuple(settings["stages"])
    if settings["stages"] not in ((1,), (1, 2)):
        raise CompressLibError(f"pretraining stages must be (1,) or (1, 2), got {settings['stages']}")
    return settings


def parse_pretrain_overrides(value, preset: str, label: str = "settings") -> dict:
    """The pretraining settings a notebook's `settings` parameter (a dict or "field=value,...") changes, typed
    like the preset's (a per-frame-rate value such as crop_frames takes one number for every rate)."""
    defaults = {k: (v[20] if isinstance(v, dict) else v) for k, v in PRETRAIN_PRESETS[check_preset(preset)].items()}
    return parse_overrides(value, defaults, "pretraining setting", label)


def default_stage2_layer(num_layers: int) -> int:
    """The paper clusters layer 9 of 12; a shallower model uses the same relative depth (at least layer 1)."""
    return max(1, round(9 * num_layers / 12))


def learning_rate(step: int, lr: float, total_steps: int, warmup_steps: int = 0, schedule: str = "constant") -> float:
    """Linear warm-up over `warmup_steps`, then constant, linear decay to 0 or cosine decay to 0."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 .. 1
    if schedule == "linear":
        return lr * (1.0 - progress)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def stage_config(preset: str, frame_ms: int, stage: int, settings: dict):
    """The MelHuBERT architecture trained in `stage` (the cluster head has that stage's K)."""
    return config_for_preset(preset, frame_ms, num_clusters=settings[f"stage{stage}_clusters"])


def stage2_layer_for(preset: str, settings: dict) -> int:
    layer = settings["stage2_layer"]
    return default_stage2_layer(MODEL_PRESETS[preset]["num_layers"]) if layer is None else int(layer)


# -- distributed -------------------------------------------------------------------------------------------------
def init_distributed() -> tuple[int, int, torch.device, bool]:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPU); returns (rank, world, device, started)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = False
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        started = True
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = torch.device("cpu")
    return rank, world, device, started


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rank0_first(fn):
    """Run `fn` on rank 0 first (it fills the on-disk caches), then on the other ranks (they only read them)."""
    if not (dist.is_available() and dist.is_initialized()):
        return fn()
    if dist.get_rank() == 0:
        result = fn()
        dist.barrier()
    else:
        dist.barrier()
        result = fn()
    return result


def check_ranks_in_sync(model: torch.nn.Module) -> None:
    """Raise if the processes of a distributed run hold different weights (they must stay identical)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"distributed ranks diverged: weight checksums {[float(g) for g in gathered]}")


# -- data ------------------------------------------------------------------------------------------------------
def _load_feats(data_dir, frame_ms: int) -> list[torch.Tensor]:
    from compress_lib.data.features import load_features

    return list(load_features(data_dir, PRETRAIN_SPLIT, frame_ms).feats)


def data_fingerprint(feats: list[torch.Tensor]) -> str:
    """A short hash of the pretraining features (number, lengths and a sample of values) to detect a changed corpus."""
    h = hashlib.sha256()
    for f in feats:
        h.update(str(tuple(f.shape)).encode())
        h.update(f[:: max(1, f.shape[0] // 4)].contiguous().float().numpy().round(3).tobytes())
    return h.hexdigest()[:16]




def stage2_targets_cached(data_dir, teacher_path, layer: int, num_clusters: int, seed: int, frame_ms: int,
                          feats: list[torch.Tensor], cache_path=None) -> list[torch.Tensor]:
    """k-means targets of layer `layer` of the checkpoint at `teacher_path`, cached in `cache_path` if given."""
    from compress_lib.data.kmeans import stage2_targets

    key = dict(teacher_sha256=file_sha256(teacher_path), layer=layer, num_clusters=num_clusters, seed=seed,
               frame_ms=frame_ms, data=data_fingerprint(feats))
    if cache_path is not None and Path(cache_path).is_file():
        cached = safe_torch_load(cache_path, "stage-2 target cache")
        if cached.get("key") == key:
            return [t.long() for t in cached["targets"]]
    teacher = load_checkpoint(teacher_path).model
    targets = [t.long() for t in stage2_targets(data_dir, teacher, layer, num_clusters, seed, frame_ms)]
    if cache_path is not None and is_main_process():
        small = torch.int16 if num_clusters <= 32767 else torch.int32
        atomic_torch_save({"key": key, "targets": [t.to(small) for t in targets]}, cache_path)
    return targets


def targets_for(meta_targets: dict, data_dir, feats, checkpoint_path=None, cache_path=None) -> list[torch.Tensor]:
    """Rebuild the targets a checkpoint's `meta["targets"]` record describes."""
    t = meta_targets
    if t["kind"] == "logmel":
        from compress_lib.data.kmeans import stage1_targets

        return [x.long() for x in stage1_targets(data_dir, t["num_clusters"], t["seed"], t["frame_ms"])]
    teacher = _resolve_teacher(t, checkpoint_path)
    return stage2_targets_cached(data_dir, teacher, t["layer"], t["num_clusters"], t["seed"], t["frame_ms"], feats,
                                 cache_path)


def _resolve_teacher(t: dict, checkpoint_path) -> Path:
    """Find the model whose layer was clustered: beside the checkpoint (relative path) or at its absolute path."""
    candidates = []
    if checkpoint_path is not None and t.get("teacher_relpath"):
        candidates.append(Path(checkpoint_path).parent / t["teacher_relpath"])
    candidates.append(Path(t["teacher_path"]))
    for c in candidates:
        if c.is_file():
            if file_sha256(c) != t["teacher_sha256"]:
                raise CompressLibError(
                    f"{c} is not the stage-1 model the stage-2 targets were made from (content hash differs); "
                    "restore the original run folder or rerun `compress-lib pretrain`"
                )
            return c
    raise CompressLibError(
        f"the stage-1 model whose layer {t['layer']} gave the stage-2 targets is missing (looked at "
        f"{', '.join(map(str, candidates))}); keep the pretraining run folder together"
    )


def load_pretraining_data(data_dir, teacher_checkpoint_path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The pretraining features and the SAME targets the checkpoint was last trained on.

    Compression fine-tunes a pruned model on exactly this masked-prediction loss.
    Returns (feats: list of (T_i, F) tensors, targets: list of (T_i,) LongTensors).
    """
    ckpt = load_checkpoint(teacher_checkpoint_path)
    record = ckpt.meta.get("targets")
    if not record:
        raise CompressLibError(
            f"{teacher_checkpoint_path} records no pretraining targets (an imported or hand-made checkpoint?); "
            "pass a checkpoint written by `compress-lib pretrain`"
        )
    feats = _load_feats(data_dir, record["frame_ms"])
    cache = None
    if record.get("cache_relpath"):
        cache = Path(teacher_checkpoint_path).parent / record["cache_relpath"]
    targets = targets_for(record, data_dir, feats, teacher_checkpoint_path, cache)
    _check_aligned(feats, targets)
    return feats, targets


def _check_aligned(feats, targets) -> None:
    if len(feats) != len(targets) or any(f.shape[0] != t.shape[0] for f, t in zip(feats, targets)):
        raise CompressLibError(
            "the k-means targets do not line up with the pretraining features (another corpus or frame rate?); "
            "regenerate the corpus or pass the matching --data"
        )


# -- one stage ---------------------------------------------------------------------------------------------------
def init_model(cfg, seed: int, stage: int) -> MelHuBERT:
    """A freshly initialised MelHuBERT; the same (seed, stage) always gives the same weights."""
    torch.manual_seed(step_seed(seed, 0, salt=1000 + stage))
    return MelHuBERT(cfg)


def make_batcher(feats, targets, settings: dict, cfg, seed: int, stage: int) -> CropBatcher:
    return CropBatcher(feats, targets, crop_frames=settings["crop_frames"], batch_size=settings["batch_size"],
                       start_prob=cfg.mask_prob, span=cfg.mask_length, seed=step_seed(seed, 0, salt=2000 + stage))


def evaluate_masked_prediction(model, batcher: CropBatcher, num_batches: int = 8, device="cpu") -> dict:
    """Loss and accuracy of masked prediction (eval mode) on fixed batches that training never draws."""
    batches = [batcher(step=i, micro=0, rank=10_000) for i in range(num_batches)]  # a stream no training process uses
    return masked_prediction_metrics(model, batches, device)


def _check_or_write_settings(path: Path, record: dict) -> None:
    """A run folder keeps the settings it was started with; resuming with others is an error."""
    if path.is_file():
        check_same_settings(json.loads(path.read_text()), record, f"{path.parent} holds a pretraining run with other "
                            "settings", "use a fresh --out folder or rerun with the original options")
    elif is_main_process():
        write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True))


def _json_safe(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def run_stage(stage: int, data_dir, out_dir: Path, preset: str, frame_ms: int, seed: int, feats, settings: dict,
              rank: int, world: int, device: torch.device, progress: bool = True) -> Path:
    """Train one stage (or resume it, or skip it if done); returns the stage's final checkpoint path."""
    stage_dir = out_dir / f"stage{stage}"
    final_path = stage_dir / "model.pt"
    cfg = stage_config(preset, frame_ms, stage, settings)
    total_steps = settings[f"stage{stage}_steps"]
    record = _json_safe(dict(preset=preset, frame_ms=frame_ms, stage=stage, seed=seed, settings=settings,
                             config=cfg.to_dict(), data=data_fingerprint(feats)))
    _check_or_write_settings(stage_dir / "settings.json", record)
    if final_path.is_file():
        meta = load_checkpoint(final_path).meta
        if meta.get("steps") == total_steps and meta.get("run") == record:
            return final_path

    K = settings[f"stage{stage}_clusters"]
    target_seed = seed  # k-means seed (scikit-learn wants < 2**32)
    if stage == 1:
        targets_record = dict(kind="logmel", num_clusters=K, seed=target_seed, frame_ms=frame_ms)
        targets = rank0_first(lambda: targets_for(targets_record, data_dir, feats))
    else:
        teacher = out_dir / "stage1" / "model.pt"
        if not teacher.is_file():
            raise CompressLibError(f"stage 2 needs the stage-1 model {teacher}; run `--stage 1` first (same --out)")
        layer = stage2_layer_for(preset, settings)
        targets_record = dict(kind="layer", num_clusters=K, seed=target_seed, frame_ms=frame_ms, layer=layer,
                              teacher_path=str(teacher.resolve()), teacher_sha256=file_sha256(teacher))
        cache = stage_dir / "targets.pt"
        targets = rank0_first(
            lambda: stage2_targets_cached(data_dir, teacher, layer, K, target_seed, frame_ms, feats, cache))
    _check_aligned(feats, targets)

    model = init_model(cfg, seed, stage)
    if stage == 1 and rank == 0 and not (out_dir / "random_init.pt").is_file():
        save_checkpoint(out_dir / "random_init.pt", model, preset=preset, frame_ms=frame_ms, stage=0, steps=0,
                        seed=seed, final_loss=None, note="untrained twin of the stage-1 model (same initial weights)")
    if stage == 2 and settings["stage2_init"] == "stage1":
        stage1_weights = load_checkpoint(out_dir / "stage1" / "model.pt").model.state_dict()
        own = model.state_dict()
        model.load_state_dict({k: (own[k] if k.startswith("final_proj.") else v) for k, v in stage1_weights.items()})
    model.to(device)
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model
    optimizer = torch.optim.Adam(net.parameters(), lr=settings["lr"], betas=settings["betas"])

    batcher = make_batcher(feats, targets, settings, cfg, seed, stage)
    grad_accum = settings["grad_accum"] // world if settings["grad_accum"] % world == 0 else settings["grad_accum"]
    train_cfg = TrainConfig(total_steps=total_steps, grad_accum=grad_accum, clip_norm=settings["clip_norm"],
                            seed=seed + 7919 * stage, save_every=settings["save_every"],
                            desc=f"pretrain stage {stage}")
    log = train(
        net, optimizer,
        batch_fn=lambda step, micro: batcher(step, micro, rank),
        loss_fn=lambda m, batch, step: masked_prediction_loss(m, batch.to(device)),
        cfg=train_cfg,
        state_path=stage_dir / "state.pt",
        lr_fn=lambda step: learning_rate(step, settings["lr"], total_steps, settings["warmup_steps"],
                                         settings["schedule"]),
        progress=progress,
    )
    check_ranks_in_sync(model)
    write_log_csv(log, stage_dir / "log.csv")
    evaluation = evaluate_masked_prediction(model, batcher, device=device)
    tail = log[-max(1, min(50, len(log) // 10)):]  # the last 10% of steps (at most 50): a less noisy final loss
    meta = dict(
        preset=preset, frame_ms=frame_ms, stage=stage, steps=total_steps, seed=seed,
        final_loss=sum(r["loss"] for r in tail) / len(tail),
        final_accuracy=sum(r["accuracy"] for r in tail) / len(tail),
        eval_loss=evaluation["loss"], eval_accuracy=evaluation["accuracy"],
        train_seconds=log[-1].get("elapsed_s", 0.0) if log else 0.0,
        targets=targets_record, run=record,
    )
    if rank == 0:
        save_checkpoint(final_path, model.cpu(), **_with_relpaths(meta, final_path))
    _barrier()
    return final_path


def _with_relpaths(meta: dict, checkpoint_path: Path) -> dict:
    """Record the teacher and target cache relative to where this checkpoint lies (the run folder may move)."""
    meta = dict(meta)
    t = dict(meta["targets"])
    if t["kind"] == "layer":
        here = Path(checkpoint_path).resolve().parent
        t["teacher_relpath"] = os.path.relpath(t["teacher_path"], here)
        run_dir = Path(t["teacher_path"]).parent.parent
        t["cache_relpath"] = os.path.relpath(run_dir / "stage2" / "targets.pt", here)
    meta["targets"] = t
    return meta


# -- both stages -------------------------------------------------------------------------------------------------
def pretrain(data_dir, out_dir, preset: str = "study", frame_ms: int = 20, stage: int | None = None, seed: int = 0,
             progress: bool = True, overrides: dict | None = None) -> Path:
    """Pretrain MelHuBERT: the preset's stages (stage 1, then stage 2 in the paper's recipe) or only `stage`;
    resumable. `overrides` change settings of the preset (see `parse_pretrain_overrides`). Returns OUT/model.pt,
    the last stage's model."""
    check_preset(preset)
    check_choice(frame_ms, (10, 20), "frame rate (ms)")
    out_dir = Path(out_dir)
    settings = pretrain_settings(preset, frame_ms, **(overrides or {}))
    stages = settings["stages"] if stage is None else (check_choice(int(stage), (1, 2), "stage"),)
    rank, world, device, started = init_distributed()
    try:
        with folder_lock(out_dir, what="pretrain", temp_files=(".*.tmp", "stage*/.*.tmp")):
            return _pretrain_stages(data_dir, out_dir, preset, frame_ms, stages, seed, settings, rank, world,
                                    device, progress)
    finally:
        if started:
            dist.destroy_process_group()


def _pretrain_stages(data_dir, out_dir: Path, preset: str, frame_ms: int, stages, seed: int, settings: dict,
                     rank: int, world: int, device, progress: bool) -> Path:
    """The body of `pretrain`, run while this process holds OUT: each stage, then OUT/model.pt and its summary."""
    feats = rank0_first(lambda: _load_feats(data_dir, frame_ms))
    summary_path = out_dir / "pretrain.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for s in stages:
        t0 = time.time()
        path = run_stage(s, data_dir, out_dir, preset, frame_ms, seed, feats, settings, rank, world, device,
                         progress)
        meta = load_checkpoint(path).meta
        summary[f"stage{s}"] = {k: meta[k] for k in ("steps", "final_loss", "final_accuracy", "eval_loss",
                                                     "eval_accuracy", "train_seconds")}
        summary[f"stage{s}"]["wall_seconds_this_call"] = round(time.time() - t0, 1)
    final = out_dir / "model.pt"
    if rank == 0:
        ckpt = load_checkpoint(out_dir / f"stage{stages[-1]}" / "model.pt")
        save_checkpoint(final, ckpt.model, **_with_relpaths(ckpt.meta, final))
        summary.update(preset=preset, frame_ms=frame_ms, seed=seed, world_size=world,
                       settings=_json_safe(settings), final_stage=stages[-1])
        write_text_atomic(summary_path, json.dumps(summary, indent=1, sort_keys=True))
    _barrier()
    return final
