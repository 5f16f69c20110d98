"""The one training loop of the study: pretraining, fine-tuning between pruning steps and distillation all use it.

Resumable and deterministic by construction:
- the batch of step s is a pure function of (seed, s) (`batch_fn(step, micro)`), and the global torch RNG
  (dropout) is reseeded from (seed, s) at the start of every step, so no RNG state needs saving;
- model, optimizer, step and log are saved atomically every `save_every` steps and at the end;
- rerunning after an interruption (even kill -9) loads the last save and continues; the final weights are
  exactly those of an uninterrupted run.

Under torchrun (DistributedDataParallel) every rank runs the same loop on its own shard (the `batch_fn` reads
the rank) and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from compress_lib.checkpoint import atomic_torch_save, safe_torch_load
from compress_lib.files import write_text_atomic


def step_seed(seed: int, step: int, salt: int = 0) -> int:
    """A deterministic 63-bit seed for step `step` of a run seeded with `seed`."""
    return (seed * 1_000_003 + step * 9_176 + salt * 7_919 + 0x5EED) % (2**63 - 1)


def seed_torch(seed: int) -> None:
    """What `torch.manual_seed(seed)` does for the generators in use, at a fraction of its cost per call: the CPU
    generator, and CUDA's once CUDA is initialised (a model trained on a GPU has initialised it). On a machine
    without an initialised accelerator, `torch.manual_seed` queues a lazy seeding call for CUDA, XPU and MTIA,
    each formatting a stack trace: about 1 ms per call here, a fifth of a speaker-ID probe's training step."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    return not is_distributed() or dist.get_rank() == 0


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


@dataclass
class TrainConfig:
    total_steps: int  # optimizer updates to reach (absolute, counted from 0)
    grad_accum: int = 1  # micro-batches per update
    clip_norm: float | None = None  # gradient clipping (max global L2 norm)
    seed: int = 0
    save_every: int = 100  # steps between resumable saves
    log_every: int = 1  # steps between log rows
    desc: str = "train"  # progress-bar label


def train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_fn: Callable[[int, int], Any],
    loss_fn: Callable[[torch.nn.Module, Any, int], tuple[torch.Tensor, dict]],
    cfg: TrainConfig,
    state_path: str | Path | None = None,
    lr_fn: Callable[[int], float] | None = None,
    after_step: Callable[[torch.nn.Module, int], None] | None = None,
    stop_fn: Callable[[list[dict]], bool] | None = None,
    extra_state: dict | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run (or resume) training until `cfg.total_steps` updates; returns the log (one dict per logged step).

    Args:
        batch_fn: (step, micro) -> batch; must depend only on its arguments (and the run's seed).
        loss_fn: (model, batch, step) -> (loss, metrics); metrics are floats added to the log.
        state_path: where the resumable state lives; None trains without saving.
        lr_fn: step -> learning rate, applied before each update.
        after_step: called after each update (e.g. re-apply pruning masks).
        stop_fn: log -> bool; stop early when it returns True (e.g. the loss has converged).
        extra_state: small picklable dict saved with the state (e.g. the pruning stage).
    """
    log: list[dict] = []
    step, elapsed_s = 0, 0.0
    if state_path is not None and Path(state_path).exists():
        state = safe_torch_load(state_path, "training state")
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, log, elapsed_s = state["step"], state["log"], state.get("elapsed_s", 0.0)
        if extra_state is not None:
            extra_state.update(state.get("extra", {}))
    if step >= cfg.total_steps or (stop_fn is not None and log and stop_fn(log)):
        return log

    model.train()
    bar = tqdm(total=cfg.total_steps, initial=step, desc=cfg.desc, disable=not (progress and is_main_process()),
               dynamic_ncols=True, leave=False)
    while step < cfg.total_steps:
        t0 = time.perf_counter()
        seed_torch(step_seed(cfg.seed, step, salt=rank()))  # dropout: same per (seed, step, rank) on resume
        if lr_fn is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_fn(step)
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            batch = batch_fn(step, micro)
            # DDP: all-reduce gradients once per update, on the last micro-batch
            last = micro == cfg.grad_accum - 1
            with contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
                loss, metrics = loss_fn(model, batch, step)
                (loss / cfg.grad_accum).backward()
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach()) / cfg.grad_accum
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v) / cfg.grad_accum
        if cfg.clip_norm:
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            totals["grad_norm"] = float(grad_norm)
        totals = _mean_over_ranks(totals)
        if not math.isfinite(totals["loss"]):
            raise FloatingPointError(f"{cfg.desc}: loss became {totals['loss']} at step {step}; lower the learning rate")
        optimizer.step()
        if after_step is not None:
            after_step(model, step)
        step += 1
        elapsed_s += time.perf_counter() - t0
        if step % cfg.log_every == 0 or step == cfg.total_steps:
            log.append({"step": step, "lr": optimizer.param_groups[0]["lr"], **totals, "elapsed_s": elapsed_s})
        bar.update(1)
        bar.set_postfix(loss=f"{totals['loss']:.3f}")
        stop = stop_fn is not None and stop_fn(log)
        if state_path is not None and (step % cfg.save_every == 0 or step == cfg.total_steps or stop):
            save_state(state_path, model, optimizer, step, log, extra_state, elapsed_s)
        if stop:
            break
    bar.close()
    model.eval()
    return log


def _mean_over_ranks(totals: dict[str, float]) -> dict[str, float]:
    """Under DDP, the logged metrics are the mean over all processes (every rank logs the same numbers)."""
    if not is_distributed():
        return totals
    keys = sorted(totals)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    values = torch.tensor([totals[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    values /= dist.get_world_size()
    return dict(zip(keys, values.tolist()))


def save_state(path, model, optimizer, step: int, log: list[dict], extra: dict | None = None,
               elapsed_s: float = 0.0) -> None:
    if not is_main_process():
        return
    atomic_torch_save(
        {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "step": step, "log": log,
         "extra": extra or {}, "elapsed_s": elapsed_s},
        path,
    )


def write_log_csv(log: list[dict], path: str | Path) -> None:
    """Write a training log as CSV (columns: the union of keys, `step` first)."""
    if not is_main_process():
        return
    keys = ["step"] + sorted({k for row in log for k in row} - {"step"})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(log)
    write_text_atomic(path, text.getvalue())


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model
