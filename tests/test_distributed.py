"""`compress-lib pretrain` under torchrun: 2 CPU processes with gloo stay in sync and only rank 0 writes
(to the run folder and to the corpus's caches)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from compress_lib.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

# Runs on every rank: records every file the rank opens for writing under the run folder (audit hook), and a
# hash of the rank's final weights, then runs the real command.
RUNNER = r"""
import hashlib, json, os, sys
out_dir = os.path.abspath(sys.argv[2])
watched = (out_dir, os.path.abspath(sys.argv[1]))  # the run folder and the corpus (its feature / k-means caches)
rank = int(os.environ["RANK"])
writes = []

def hook(event, args):
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        path, mode, flags = args[0], args[1], args[2]
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (flags or 0) & (os.O_WRONLY | os.O_RDWR)
        if writing and os.path.abspath(os.fsdecode(path)).startswith(watched):
            writes.append(os.fsdecode(path))
    elif event in ("os.rename", "os.replace", "os.mkdir", "os.remove") and \
            os.path.abspath(os.fsdecode(args[0])).startswith(watched):
        writes.append(f"{event} {os.fsdecode(args[0])}")

sys.addaudithook(hook)
import compress_lib.pretrain as p
from compress_lib.cli import main
digests = []
real_check = p.check_ranks_in_sync

def check(model):
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.detach().cpu().numpy().tobytes())
    digests.append(h.hexdigest())
    real_check(model)

p.check_ranks_in_sync = check
code = main(["pretrain", "--preset", "smoke", "--no-progress", "--data", sys.argv[1], "--out", out_dir])
with open(os.path.join(sys.argv[3], f"rank{rank}.json"), "x") as f:
    json.dump({"code": code, "writes": writes, "digests": digests}, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync_and_only_rank0_writes(smoke_corpus, tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    report = tmp_path / "report"
    report.mkdir()
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(script), str(smoke_corpus), str(out), str(report)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["code"] == ranks[1]["code"] == 0
    assert len(ranks[0]["digests"]) == 2  # one check per stage
    assert ranks[0]["digests"] == ranks[1]["digests"]  # identical weights on both ranks after each stage
    assert ranks[0]["writes"] and ranks[1]["writes"] == []
    meta = load_checkpoint(out / "model.pt").meta
    assert meta["stage"] == 2
    assert json.loads((out / "pretrain.json").read_text())["world_size"] == 2
