"""Nothing lost, nothing silently wrong: damaged trajectory points are rebuilt, a run folder is locked,
truncated evaluations keep their own rows, replaced audio is never served from a stale feature cache."""

import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import run_method
import torch

from compress_lib.checkpoint import load_checkpoint
from compress_lib.compression import load_trajectory
from compress_lib.errors import CompressLibError
from compress_lib.locking import LOCK_NAME, folder_lock, read_lock, remove_stale_temp_files

RECORD_KEYS = ("index", "stage", "density", "loss", "pretrain_loss", "steps", "stage_steps", "structure")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run fastest on one thread
run = run_method  # conftest: one smoke trajectory on the module's teacher_and_data


def tensors(path) -> dict:
    """Every tensor of a point's checkpoint: its weights and (weight pruning) its masks."""
    ckpt = load_checkpoint(path)
    masks = {f"mask:{k}": v for k, v in (ckpt.masks or {}).items()}
    return {**ckpt.model.state_dict(), **masks}


def assert_same_tensors(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


@pytest.fixture(scope="module")
def reference(teacher_and_data, tmp_path_factory):
    """Finished smoke trajectories (heads: 3 points; weight: 3 points, with masks) and their points' tensors."""
    out = {}
    for method, kw in (("heads", {}), ("weight", {"target_density": 0.7})):
        folder = tmp_path_factory.mktemp("reference") / method
        points = run(method, teacher_and_data, folder, **kw)
        out[method] = (folder, points, [tensors(folder / p["checkpoint"]) for p in points], kw)
    return out


def damage(path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # flip one byte in the middle: same size, still a zip file perhaps, other content
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


# -- S1: damaged points are rebuilt, bit-identically ---------------------------------------------------------------
@pytest.mark.parametrize("method,k,how", [
    ("heads", 0, "truncate"), ("heads", 1, "delete"), ("heads", 2, "truncate"), ("heads", 1, "flip"),
    ("weight", 1, "truncate"), ("weight", 2, "delete"),
])
def test_a_damaged_point_and_those_after_it_are_rebuilt_bit_identically(method, k, how, reference,
                                                                         teacher_and_data, tmp_path, capfd):
    folder, points, reference_tensors, kw = reference[method]
    copy = tmp_path / method
    shutil.copytree(folder, copy)
    damage(copy / points[k]["checkpoint"], how)
    capfd.readouterr()
    rebuilt = run(method, teacher_and_data, copy, **kw)
    assert "computing point" in capfd.readouterr().err
    assert [{key: p[key] for key in RECORD_KEYS} for p in rebuilt] == [
        {key: p[key] for key in RECORD_KEYS} for p in points]
    for j, p in enumerate(rebuilt):
        assert_same_tensors(tensors(copy / p["checkpoint"]), reference_tensors[j])
        assert p["checkpoint_bytes"] == (copy / p["checkpoint"]).stat().st_size
    assert load_trajectory(copy)["points"] == rebuilt
    assert not list(copy.glob("stages/*/*.pt")) and not list(copy.rglob(".*.tmp"))
    assert not (copy / LOCK_NAME).exists()  # released


def test_an_intact_trajectory_is_not_touched(reference, teacher_and_data, tmp_path, capfd):
    folder, points, _, kw = reference["heads"]
    copy = tmp_path / "heads"
    shutil.copytree(folder, copy)
    mtimes = [(copy / p["checkpoint"]).stat().st_mtime_ns for p in points]
    capfd.readouterr()
    assert run("heads", teacher_and_data, copy, **kw) == points
    assert "note" not in capfd.readouterr().err
    assert [(copy / p["checkpoint"]).stat().st_mtime_ns for p in points] == mtimes


def test_evaluating_a_damaged_point_names_the_command_that_rebuilds_it(reference, tmp_path):
    from compress_lib.downstream.upstream import load_upstream

    folder, points, _, _ = reference["heads"]
    copy = tmp_path / "heads"
    shutil.copytree(folder, copy)
    point = copy / points[1]["checkpoint"]
    assert load_upstream(str(point)).method == "heads"
    for how in ("truncate", "delete"):
        damage(point, how)
        with pytest.raises(CompressLibError, match=r"rerun `compress-lib compress heads --teacher .* --preset smoke "
                                                   rf"--out {copy}` .*rebuilds") as error:
            load_upstream(str(point))
        assert "delete it" not in str(error.value) and len(str(error.value).splitlines()) == 1


# -- S3: one run per folder -----------------------------------------------------------------------------------------
def test_a_live_runs_lock_refuses_a_second_run(teacher_and_data, tmp_path):
    out = tmp_path / "heads"
    out.mkdir()
    (out / LOCK_NAME).write_text(f'{{"pid": {os.getppid()}, "host": "{os.uname().nodename}", "what": "compress ffn"}}')
    with pytest.raises(CompressLibError, match=rf"{out} is in use by another run \(compress ffn, pid {os.getppid()}"):
        run("heads", teacher_and_data, out)
    assert not (out / "trajectory.json").exists() and (out / LOCK_NAME).exists()  # nothing written, lock left


def test_two_processes_never_share_a_folder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from compress_lib.locking import folder_lock
            with folder_lock({str(tmp_path)!r}, what="compress ffn"):
                print("held", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CompressLibError, match=rf"{tmp_path} is in use .*compress ffn, pid {holder.pid}"):
            with folder_lock(tmp_path, what="compress heads"):
                pass
        with folder_lock(tmp_path, what="evaluate pr", lock_name=".pr.lock"):  # another kind of run: its own lock
            pass
    finally:
        holder.communicate("")
    assert holder.returncode == 0 and not (tmp_path / LOCK_NAME).exists()
    with folder_lock(tmp_path, what="compress heads"):  # free again
        assert read_lock(tmp_path / LOCK_NAME)["pid"] == os.getpid()


def test_the_holder_may_take_its_lock_again(tmp_path):
    with folder_lock(tmp_path, what="compress heads"):
        with folder_lock(tmp_path, what="compress heads"):  # e.g. a command locking --out, then the runner
            pass
        assert read_lock(tmp_path / LOCK_NAME)["pid"] == os.getpid()  # still held by the outer one
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_dead_runs_lock_and_temp_files_are_taken_over(teacher_and_data, tmp_path, capfd):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "heads"
    (out / "points" / "1").mkdir(parents=True)
    (out / LOCK_NAME).write_text(f'{{"pid": {dead.pid}, "host": "{os.uname().nodename}", "what": "compress heads"}}')
    leftover = out / "points" / "1" / ".model.pt.x1y2.tmp"  # what a kill -9 inside atomic_torch_save leaves
    leftover.write_bytes(b"partial")
    foreign = out / "notes.tmp"  # not our temp pattern: kept
    foreign.write_text("mine")
    old = time.time() - 60
    for path in (leftover, foreign):
        os.utime(path, (old, old))
    capfd.readouterr()
    points = run("truncate", teacher_and_data, out)
    err = capfd.readouterr().err
    assert f"pid {dead.pid}" in err and "no longer running" in err and len(err.strip().splitlines()) == 1
    assert len(points) == 2 and not leftover.exists() and foreign.exists() and not (out / LOCK_NAME).exists()


def test_stale_temp_files_of_a_shared_folder_go_only_when_old(tmp_path):
    old, fresh, other = tmp_path / ".a.pt.1.tmp", tmp_path / ".b.pt.2.tmp", tmp_path / "c.pt"
    for path in (old, fresh, other):
        path.write_text("x")
    long_ago = time.time() - 3600
    for path in (old, other):
        os.utime(path, (long_ago, long_ago))
    assert remove_stale_temp_files(tmp_path) == [old]  # default: untouched for ten minutes
    assert fresh.exists() and other.exists()


# -- S2: truncated evaluations keep their own rows ------------------------------------------------------------------
def test_rows_of_different_truncations_coexist(teacher_and_data, tmp_path):
    from compress_lib.downstream.evaluate import summary_row
    from compress_lib.downstream.upstream import load_upstream
    from compress_lib.results import read_summary, update_summary

    teacher = str(teacher_and_data[0])
    full, one, all_four = (load_upstream(teacher), load_upstream(teacher, num_layers=1),
                           load_upstream(teacher, num_layers=4))
    assert (full.name, one.name, all_four.name) == ("dense", "dense (first 1 layer)", "dense")
    assert load_upstream(teacher, num_layers=2).name == "dense (first 2 layers)"
    assert load_upstream(teacher, num_layers=1, name="mine").name == "mine"  # an explicit name is kept
    summary = tmp_path / "summary.csv"
    summary.write_text("model,method,density,frame_ms,per\ndense,dense,1.0,20,30.0\n")  # an older, narrower file
    update_summary(summary, summary_row(one, {"task": "pr", "test": 70.0}, counts=False))
    update_summary(summary, summary_row(full, {"task": "pr", "test": 25.0}, counts=False))
    rows = {r["model"]: r["per"] for r in read_summary(summary)}
    assert rows == {"dense": "25.0", "dense (first 1 layer)": "70.0"}


# -- S4: replaced audio is never served from the cache --------------------------------------------------------------
def test_replaced_audio_of_the_same_size_and_mtime_is_recomputed(smoke_corpus, tmp_path):
    import compress_lib.data.features as F
    from compress_lib.data.audio import load_audio, write_wav
    from compress_lib.data.manifest import read_split

    corpus = tmp_path / "corpus"
    shutil.copytree(smoke_corpus, corpus, ignore=shutil.ignore_patterns(".cache"))
    key = F.audio_key(corpus, "pr-test")
    before = F.raw_log_mel(corpus, "pr-test", progress=False)[1][0]
    utt = read_split(corpus, "pr-test")[0]
    st = utt.path.stat()
    write_wav(utt.path, load_audio(utt.path).numpy()[::-1].copy())  # other audio, same length
    os.utime(utt.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (utt.path.stat().st_size, utt.path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert F.audio_key(corpus, "pr-test") != key
    after = F.raw_log_mel(corpus, "pr-test", progress=False)[1][0]
    assert before.shape == after.shape and not torch.equal(before, after)
    os.utime(utt.path)  # touching changes no content: the cache stays valid
    assert F.audio_key(corpus, "pr-test") == F.raw_log_mel(corpus, "pr-test", progress=False)[2]
