"""Run the study: generate the corpus, execute every experiment notebook with papermill, build the book.

    python tools/run_study.py                       # the default study preset, then the book
    python tools/run_study.py --preset smoke        # seconds; results in data/results/smoke/
    python tools/run_study.py --only 09_efficiency --force

For each experiment of tools/study_plan.py, in order:
- `notebooks/<stem>.md` (jupytext) is converted to `.ipynb` and executed by papermill with the parameters it
  declares among: preset, seed, frame_ms (when given), data_dir (the corpus: <work>/corpus, or
  <work>/corpus-<scale> for a smaller one such as the smoke preset's), work_dir (<work>/<preset>) and output_dir
  (data/results/<preset>/<stem>); the kernel runs in the repository root.
- The executed notebook becomes `data/results/<preset>/<stem>.ipynb` (a book page) only when it succeeded; a
  failed run is kept under <work>/<preset>/failed/ and nothing already computed is replaced.
- `data/results/<preset>/<stem>.run.json` records what the run used (hash of the notebook source, parameters,
  versions, duration). A notebook whose source and parameters (its thread count aside) match its record is up
  to date and skipped, unless a notebook it reads finished after it started (`input_ran_since`: a teacher
  retrained with `--only 02_pretrain --force` reruns everything downstream); `--force` reruns it. (A change to
  compress_lib alone does not rerun anything; it is reported.) A notebook whose code cells are unchanged but
  whose prose or cell tags changed is not rerun: its executed copy takes the new prose and tags and keeps its
  outputs ("refreshed").
- `data/results/<preset>/run_times.csv` lists each notebook's last run time and their total, and, after a whole
  run, its corpus step and wall time (`study_run.json`; the book's reproducibility appendix shows the published
  run's).
- `--jobs 2` (the default on 2 or more cores) runs notebooks that do not depend on each other side by side, one
  thread each; those that time models run alone (`tools/study_plan.py` says which need which). With several
  frame rates, the notebooks marked `split_by_rate` run in two parts, 20 ms first and then every rate (the second
  part reuses the first's checkpoints and evaluations), so that the 20 ms notebooks run beside the 10 ms
  pretraining and the 20 ms evaluations beside the 10 ms compression (`plan_jobs`; `--split-by-rate no` turns
  this off).
Nothing is ever faked: the exit status is 0 only when every step succeeded.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_plan import EXPERIMENTS, PUBLISHED_PRESET, RESULTS_DIR, ROOT, Experiment  # noqa: E402

# Per preset: the size of the generated stand-in corpus (`compress-lib corpus --scale`; 1 = about 7 hours) and
# the frame rates the study runs at (compress_lib.presets.STUDY_SCALES).
from compress_lib.files import write_text_atomic  # noqa: E402
from compress_lib.presets import PRESET_NAMES, study_scale  # noqa: E402
from compress_lib.study import CORPUS_SCALE, parse_frame_rates  # noqa: E402

WHOLE_RUN_FILE = "study_run.json"  # the last whole run (corpus and every notebook): wall time and job layout


def corpus_dir(work: Path, scale: float) -> Path:
    """Where the corpus of a scale lives: <work>/corpus at full scale, <work>/corpus-<scale> otherwise."""
    return work / ("corpus" if scale == 1 else f"corpus-{scale:g}")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def code_hash(package: Path = ROOT / "compress_lib") -> str:
    """Hash of every .py file of compress_lib (path and content), to report results older than the code."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def rel(path: Path) -> str:
    """`path` relative to the repository root when inside it (executed notebooks stay machine independent)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def declared_parameters(ipynb: Path) -> set[str]:
    """Names in the notebook's `parameters` cell; raises if it has none."""
    import papermill

    params = papermill.inspect_notebook(str(ipynb))
    if not params:
        raise SystemExit(f"error: {ipynb} has no cell tagged `parameters`; add one (see notebooks/09_efficiency.md)")
    return set(params)


@dataclass(frozen=True)
class Job:
    """One run of a notebook in the schedule: the notebook at the run's frame rates, or the first part of a
    notebook split by frame rate (`rates`: that one rate; see `plan_jobs`)."""

    exp: Experiment
    name: str  # the notebook's stem, or '<stem>@<rate>' for a first part
    needs: tuple[str, ...]  # the names of the jobs it waits for
    runs_alone: bool
    rates: str | None = None  # a first part's frame rate (None: the run's)
    minutes: float = 0.0  # rough cost (tools/study_plan.py): the longer of two equally urgent jobs starts first


def whole_job(exp: Experiment) -> Job:
    """The notebook in one run at the run's frame rates."""
    return Job(exp, exp.stem, exp.needs, exp.runs_alone, minutes=sum(exp.minutes))


def plan_jobs(selected: list[Experiment], args) -> list[Job]:
    """The jobs of this run, in plan order. With `--jobs` above 1 and several frame rates, a notebook marked
    `split_by_rate` runs in two parts: first at the highest rate (20 ms, the cheaper half), on one thread beside
    other notebooks, then at every rate, continuing the first part (`earlier_parts`). A job that runs at the first
    rate only waits for the first parts of what it reads: the 20 ms compression notebooks start as soon as the
    20 ms teacher exists, beside the 10 ms pretraining, and the 20 ms evaluations (in as many worker processes as
    jobs, one thread each: `fills_free_cores`) beside the 10 ms compression. A notebook marked `rates_at_once`
    (02, which reads no other notebook) runs every rate's part at once, side by side, and its whole run only
    merges them: the 10 ms teacher pretrains beside the 20 ms one. No result depends on the split: a
    part trains and evaluates exactly what the whole notebook would, on one thread per model (the second part of
    02 and 08 as well: 02's on one thread, 08's alone with its worker processes)."""
    rates = parse_frame_rates(args.frame_rates or "", [])
    wanted = {"yes": True, "no": False}.get(args.split_by_rate, study_scale(args.preset).judged)
    if args.jobs <= 1 or len(rates) < 2 or not wanted:
        return [whole_job(exp) for exp in selected]
    first = str(max(rates))
    split = {exp.stem for exp in selected if exp.split_by_rate}

    def job_making(stem: str, rates_run: str) -> str:  # the job that makes what a job at `rates_run` reads of stem
        return f"{stem}@{first}" if stem in split and rates_run == first else stem

    jobs = []
    for exp in selected:
        if exp.stem not in split:
            needs = tuple(job_making(n, run_rates(exp, args)) for n in exp.needs)
            jobs.append(Job(exp, exp.stem, needs, exp.runs_alone, minutes=sum(exp.minutes)))
            continue
        jobs.append(Job(exp, f"{exp.stem}@{first}", tuple(job_making(n, first) for n in exp.needs), False, first,
                        exp.minutes[0]))
        parts = [f"{exp.stem}@{first}"]
        if exp.rates_at_once:  # the other rates' parts too, each beside the first: the whole notebook only merges
            for rate in sorted(rates, reverse=True)[1:]:
                jobs.append(Job(exp, f"{exp.stem}@{rate}", exp.needs, False, str(rate), exp.minutes[1]))
                parts.append(f"{exp.stem}@{rate}")
        jobs.append(Job(exp, exp.stem, (*parts, *exp.needs), exp.runs_alone and exp.whole_runs_alone,
                        minutes=0.0 if exp.rates_at_once else exp.minutes[1]))
    return jobs


def run_rates(exp: Experiment, args) -> str:
    """The frame rates a notebook runs at: the run's, or its own (07: 20 ms) except at a preset whose numbers
    mean nothing (smoke: it tests every notebook at every rate)."""
    pinned = exp.frame_rates is not None and args.frame_rates and study_scale(args.preset).judged
    return exp.frame_rates if pinned else args.frame_rates


def parameters_for(job: Job, declared: set[str], args) -> dict:
    """The parameters this run passes to a job: the standard ones the notebook declares. With `--jobs` above 1,
    a notebook that may run beside another gets one thread (unless `--threads` says otherwise) and one worker
    process, whether or not it has company at the time, so that its results do not depend on the schedule; one
    marked `fills_free_cores` (08) gets `--jobs` worker processes of one thread each: for a while more processes
    than cores, but no core idles once its neighbour ends (the process count changes only the speed)."""
    exp = job.exp
    offered = {
        "preset": args.preset,
        "data_dir": rel(corpus_dir(args.work, args.corpus_scale)),
        "work_dir": rel(args.work / args.preset),
        "output_dir": rel(exp.output_dir(args.preset, args.results)),
    }
    if args.seed is not None:
        offered["seed"] = args.seed
    if args.frame_ms is not None:
        offered["frame_ms"] = args.frame_ms
    if args.frame_rates is not None:
        offered["frame_rates"] = job.rates or run_rates(exp, args)
    if args.threads is not None:
        offered["threads"] = args.threads
    elif args.jobs > 1 and not job.runs_alone:
        offered["threads"] = 1
    if args.jobs > 1 and not job.runs_alone:
        offered["processes"] = args.jobs if exp.fills_free_cores else 1
    return {k: v for k, v in offered.items() if k in declared}


def record_path(exp: Experiment, preset: str, results: Path) -> Path:
    return record_of(exp.stem, preset, results)


def record_of(stem: str, preset: str, results: Path) -> Path:
    """The run record of the notebook `stem` (what `execute` writes beside its executed copy)."""
    return results / preset / f"{stem}.run.json"


def up_to_date(exp: Experiment, preset: str, results: Path, source_hash: str, params: dict,
               first_part: bool = False) -> bool:
    """Whether the notebook's last run did this work: same source and parameters (speed aside), or, for the first
    part of a split notebook, the same at more frame rates (the whole notebook ran since)."""
    record = record_path(exp, preset, results)
    if not (exp.executed(preset, results).is_file() and record.is_file()):
        return False
    saved = json.loads(record.read_text())
    old = without_speed(saved.get("parameters", {}))
    new = without_speed(params)
    if saved.get("source_sha256") != source_hash:
        return False
    if old == new:
        return True
    new_rates = rates_of(new)
    done = rates_of(old).union(*(rates_of(part) for part in saved.get("parts", [])))  # 02's parts: 20, then 10
    return first_part and other_than_rates(old) == other_than_rates(new) and bool(new_rates) and new_rates <= done


# records keep whole seconds (and durations tenths): a notebook that started right after its input finished may
# seem to have started up to a second before it
CLOCK_SLACK_S = 1.5


def input_ran_since(exp: Experiment, preset: str, results: Path, params: dict) -> str | None:
    """The notebook among those `exp` reads (`needs`) that finished after `exp`'s last run at these frame rates
    started (a teacher retrained with `--only 02_pretrain --force`, or a run stopped between two notebooks), else
    None: a notebook is up to date only when it read what its inputs hold now. A part of a notebook split by rate
    is judged against the parts of its inputs at its rates (the 20 ms compression starts before the 10 ms teacher
    is done); an input without a record is not judged."""
    record = record_path(exp, preset, results)
    if not record.is_file():
        return None
    rates = rates_of(params)
    started = part_started(part_covering(json.loads(record.read_text()), rates))
    for need in exp.needs:
        need_record = record_of(need, preset, results)
        if started is None or not need_record.is_file():
            continue
        need_saved = json.loads(need_record.read_text())
        read = rates & rates_of(need_saved.get("parameters", {})) or rates  # 08 reads 07 at the one rate 07 runs
        finished = part_finished(part_covering(need_saved, read))
        if finished is not None and finished > started + CLOCK_SLACK_S:
            return need
    return None


def part_covering(saved: dict, rates: set[int]) -> dict | None:
    """The first part of a notebook's record that ran at least `rates` (for a notebook that reads every rate, no
    `rates`: its last part, the whole notebook), None if none did. A record without parts is one part."""
    parts = saved.get("parts") or [{"frame_rates": saved.get("parameters", {}).get("frame_rates", ""),
                                    "duration_s": saved.get("duration_s"),
                                    "finished_utc": saved.get("finished_utc", "")}]
    if rates:
        for part in parts:
            done = rates_of(part)
            if not done or rates <= done:
                return part
        return None
    return parts[-1]


def part_finished(part: dict | None) -> float | None:
    """When a part of a notebook's run finished (epoch seconds); None when the record does not say."""
    try:
        return parse_utc(part["finished_utc"])
    except (KeyError, TypeError, ValueError):
        return None


def part_started(part: dict | None) -> float | None:
    """When a part of a notebook's run started (epoch seconds: its finish less its duration), or None."""
    finished = part_finished(part)
    try:
        return None if finished is None else finished - float(part["duration_s"])
    except (KeyError, TypeError, ValueError):
        return None


SPEED_PARAMETERS = ("threads", "processes")  # how fast a notebook runs, not what it computes


def without_speed(params: dict) -> dict:
    """The parameters that decide a notebook's work: its thread and worker-process counts change only the speed
    (threads also the last digits of floating-point sums), so a run that differs from the last only in those is
    up to date."""
    return {k: v for k, v in params.items() if k not in SPEED_PARAMETERS}


def rates_of(params: dict) -> set[int]:
    """The frame rates a run's parameters name (empty when it passed none)."""
    return set(parse_frame_rates(params.get("frame_rates", ""), []))


def other_than_rates(params: dict) -> dict:
    return {k: v for k, v in without_speed(params).items() if k != "frame_rates"}


INJECTED = "injected-parameters"  # papermill's tag of the cell it adds after the `parameters` cell
HIDDEN = "hide-cell"  # myst-nb tag: the book shows the cell collapsed, one click away


def is_injected(cell: dict) -> bool:
    return INJECTED in cell.get("metadata", {}).get("tags", [])


def code_sources(notebook: dict) -> list[str]:
    """The code a notebook runs: its code cells' sources in order, papermill's injected parameters aside."""
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code" and not is_injected(c)]


def hide_injected_parameters(notebook: dict) -> dict:
    """Collapse papermill's injected-parameters cell in the book, as the `parameters` cell it follows is."""
    for cell in notebook["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if INJECTED in tags and HIDDEN not in tags:
            tags.append(HIDDEN)
    return notebook


def presented(source: dict, executed: dict) -> dict:
    """The executed notebook with the prose and cell tags of `source`, whose code it ran unchanged.

    Markdown cells come from `source`; each code cell keeps its executed outputs and takes the tags the source now
    gives it (e.g. `hide-input`), so editing a notebook's prose or presentation never needs a rerun of its work.
    """
    if code_sources(source) != code_sources(executed):
        raise ValueError("the executed notebook ran other code than the source: rerun it instead")
    ran = iter(c for c in executed["cells"] if c["cell_type"] == "code" and not is_injected(c))
    injected = [c for c in executed["cells"] if is_injected(c)]
    cells = []
    for cell in source["cells"]:
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        out = json.loads(json.dumps(next(ran)))
        tags = list(cell.get("metadata", {}).get("tags", []))
        out.setdefault("metadata", {})["tags"] = tags
        cells.append(out)
        if "parameters" in tags:
            cells.extend(injected)
    return hide_injected_parameters({**executed, "cells": cells})


def write_notebook(path: Path, notebook: dict) -> None:
    """Write an .ipynb atomically, formatted as papermill writes it (indent 1, UTF-8 kept)."""
    write_text_atomic(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def same_work(exp: Experiment, preset: str, results: Path, source_ipynb: Path, params: dict) -> bool:
    """Whether the committed run executed the code of `source_ipynb` with `params` (threads, prose, tags aside)."""
    executed, record = exp.executed(preset, results), record_path(exp, preset, results)
    if not (executed.is_file() and record.is_file()):
        return False
    saved = json.loads(record.read_text())
    if without_speed(saved.get("parameters", {})) != without_speed(params):
        return False
    try:
        return code_sources(json.loads(executed.read_text())) == code_sources(json.loads(source_ipynb.read_text()))
    except (ValueError, KeyError):  # not a notebook: rerun
        return False


def refresh_presentation(exp: Experiment, preset: str, results: Path, source_ipynb: Path, source_hash: str) -> None:
    """Bring the source's prose and tags into the executed notebook (its code unchanged) and record the source."""
    executed, record_file = exp.executed(preset, results), record_path(exp, preset, results)
    write_notebook(executed, presented(json.loads(source_ipynb.read_text()), json.loads(executed.read_text())))
    record = json.loads(record_file.read_text())
    record["source_sha256"] = source_hash
    record["presentation_refreshed_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def to_ipynb(source: Path, dest: Path) -> Path:
    """The .ipynb form of a jupytext notebook (keeps the `parameters` tag papermill needs)."""
    import jupytext

    dest.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(jupytext.read(source), dest, fmt="ipynb")
    return dest


def earlier_parts(previous: dict | None, params: dict, force: bool, source_hash: str | None = None) -> list[dict]:
    """The runs this one continues: a study done in parts (e.g. `--frame-rates 20`, later the default 10,20)
    reruns each notebook with more frame rates, and the notebook reuses the checkpoints of the rates already
    done, so the notebook's cost is the sum of its parts. Only a run of the same notebook source that adds frame
    rates to an otherwise identical earlier run continues it (another rate alone, as 02's 10 ms part after its
    20 ms part, or more rates); `--force` (a run from scratch) or any other change starts afresh."""
    if force or not previous:
        return []
    if source_hash and previous.get("source_sha256", source_hash) != source_hash:
        return []
    old_params = previous.get("parameters", {})

    old_rates, new_rates = rates_of(old_params), rates_of(params)
    if not (other_than_rates(old_params) == other_than_rates(params) and old_rates and not new_rates <= old_rates):
        return []
    return previous.get("parts") or [{"frame_rates": old_params.get("frame_rates", ""),
                                       "threads": old_params.get("threads", ""),
                                       "duration_s": previous.get("duration_s"),
                                       "finished_utc": previous.get("finished_utc", "")}]


_SAY = threading.Lock()


def say(text: str, error: bool = False) -> None:
    """Print one whole line, flushed (notebooks side by side report from several threads)."""
    stream = sys.stderr if error else sys.stdout
    with _SAY:
        stream.write(text + "\n")
        stream.flush()


def execute(job: Job, args, code_sha: str) -> tuple[str, float]:
    """Run one job if needed; returns (status, seconds) with status in ran / up to date / refreshed / failed."""
    import papermill

    exp = job.exp
    source_text = exp.source.read_text()
    source_hash = sha256_text(source_text)
    scratch = args.work / args.preset
    ipynb = to_ipynb(exp.source, scratch / "notebooks" / f"{exp.stem}.ipynb")
    params = parameters_for(job, declared_parameters(ipynb), args)
    stale_input = None if args.force else input_ran_since(exp, args.preset, args.results, params)
    if stale_input:
        say(f"  {job.name}: {stale_input} ran since this notebook last ran: running it again")
    elif not args.force and up_to_date(exp, args.preset, args.results, source_hash, params, job.rates is not None):
        saved = json.loads(record_path(exp, args.preset, args.results).read_text())
        if saved.get("compress_lib_sha256") != code_sha:
            say(f"  {job.name}: note: compress_lib changed since this ran; `--only {exp.stem} --force` reruns it")
        return "up to date", 0.0
    if not args.force and not stale_input and same_work(exp, args.preset, args.results, ipynb, params):
        refresh_presentation(exp, args.preset, args.results, ipynb, source_hash)
        say(f"  {job.name}: prose or cell tags changed, code unchanged: page refreshed, results kept")
        return "refreshed", 0.0

    running = scratch / "running" / f"{job.name}.ipynb"
    running.parent.mkdir(parents=True, exist_ok=True)
    say(f"  {job.name}: running with {params}")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(ipynb), str(running), parameters=params, kernel_name="python3", cwd=str(ROOT),
            progress_bar=not args.quiet and (args.jobs <= 1 or job.runs_alone),  # one bar on screen at a time
            log_output=args.verbose, report_mode=False,
        )
    except papermill.PapermillExecutionError as exc:
        failed = scratch / "failed" / f"{job.name}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(running), failed)
        say(f"  {job.name}: FAILED in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
            f"(executed notebook: {rel(failed)})", error=True)
        return "failed", time.perf_counter() - start
    seconds = time.perf_counter() - start

    with _RECORDS:  # two parts of one notebook (`rates_at_once`) may finish at once
        write_record(exp, args, running, params, source_hash, code_sha, seconds)
    say(f"  {job.name}: done in {seconds:.0f} s -> {rel(exp.executed(args.preset, args.results))}")
    return "ran", seconds


_RECORDS = threading.Lock()


def write_record(exp: Experiment, args, running: Path, params: dict, source_hash: str, code_sha: str,
                 seconds: float) -> None:
    """Move a successful run's notebook into the results and write its record, continuing earlier parts."""
    executed = exp.executed(args.preset, args.results)
    record_file = record_path(exp, args.preset, args.results)
    previous = json.loads(record_file.read_text()) if record_file.is_file() else None
    executed.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(running), executed)
    write_notebook(executed, hide_injected_parameters(json.loads(executed.read_text())))
    this_part = {"frame_rates": params.get("frame_rates", ""), "threads": params.get("threads", ""),
                 "duration_s": round(seconds, 1),
                 "finished_utc": utc_text(time.time())}
    parts = earlier_parts(previous, params, args.force, source_hash) + [this_part]
    record = {
        "notebook": rel(exp.source),
        "source_sha256": source_hash,
        "parameters": params,
        "compress_lib_sha256": code_sha,
        "duration_s": round(sum(part["duration_s"] for part in parts), 1),
        "finished_utc": this_part["finished_utc"],
        "parts": parts,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    record_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def run_notebooks(jobs: list[Job], args, code_sha: str) -> dict[str, tuple[str, float]]:
    """Execute `jobs` (in plan order); with `--jobs N` above 1, up to N side by side, each one thread.

    A job starts once the jobs it needs (among those planned) have finished; one marked `runs_alone` (it times
    models, or keeps every core busy by itself) starts only when nothing else runs, and nothing starts beside it;
    nor does anything beside the first job, which makes what every notebook needs and may find missing (the
    corpus, the pretrained teacher) when the run does not include 01 and 02 (`--only`). Of the jobs ready to
    start, the one with the longest chain of jobs waiting on it goes first (06 before 03: 07 waits for it), then
    the longer by its rough cost (10 ms pretraining before a 20 ms compression notebook), then plan order;
    nothing overtakes a job waiting for a free slot. The schedule is the same each time, and no result depends
    on it (each job gets one thread).
    """
    if args.jobs <= 1:
        return {job.name: execute(job, args, code_sha) for job in jobs}
    statuses, pending = {}, list(jobs)
    chosen, running = {job.name for job in jobs}, {}
    depth, done = waiting_chains(jobs), 0
    pending.sort(key=lambda job: (-depth[job.name], -job.minutes))  # stable: plan order among equals
    with ThreadPoolExecutor(args.jobs) as pool:
        while pending or running:
            for job in list(pending):
                if any(need in chosen and need not in statuses for need in job.needs):
                    continue  # waits for its inputs
                alone_running = any(j.runs_alone for j in running.values())
                # the first job makes what all need and may miss (corpus, teacher); a part of the same notebook at
                # another rate (`rates_at_once`) makes its own rate's
                first_running = running and done == 0 and any(j.exp.stem != job.exp.stem for j in running.values())
                if alone_running or first_running or len(running) >= args.jobs or (job.runs_alone and running):
                    break  # waits for a free slot (nothing after it overtakes it)
                pending.remove(job)
                running[pool.submit(execute, job, args, code_sha)] = job
            if not running:  # only a plan whose notebook needs a later one gets here
                raise SystemExit(f"error: {pending[0].name} needs a notebook that runs after it; "
                                 "fix tools/study_plan.py")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                statuses[running.pop(future).name] = future.result()
                done += 1
    return {job.name: statuses[job.name] for job in jobs}


def waiting_chains(jobs: list[Job]) -> dict[str, int]:
    """job name -> the length of the longest chain of jobs in `jobs` that wait on it (0: none waits)."""
    depth: dict[str, int] = {}
    for job in reversed(jobs):  # a job needs only earlier ones (tests/test_book_study.py checks the plan)
        depth[job.name] = max((1 + depth[other.name] for other in jobs
                               if job.name in other.needs and other.name in depth), default=0)
    return depth


def part_text(part: dict) -> str:
    """'10,20 ms, 1 thread: 980.0 s' (the thread count only when the run set one)."""
    threads = part.get("threads")
    on = f", {threads} thread{'s' if threads != 1 else ''}" if threads not in ("", None) else ""
    return f"{part['frame_rates'] or '-'} ms{on}: {part['duration_s']} s"


def write_run_times(preset_dir: Path) -> Path | None:
    """`run_times.csv` beside the executed notebooks: the last run of each, from its .run.json, and the total.

    Columns: notebook, frame_rates, threads, start_s, duration_s, finished_utc, parts. A notebook run in parts (one
    frame rate, then both; see `earlier_parts`) shows the sum of its parts, each listed as `rates ms[, threads]:
    seconds`. A notebook rerun with `--force` over checkpoints already in place shows the rerun's (short) time, so
    the total is the study's cost only after a run from scratch. `start_s`: when its last run started, in seconds
    after the first start of the table (notebooks side by side overlap). `total` sums the notebooks' times; when
    every notebook's last run belongs to one whole run of this script (`study_run.json`), the rows `corpus` and
    `wall time` give that run's corpus step and its wall time from start to the last notebook (notebooks side by
    side with `--jobs` make it shorter than the total).
    """
    records = sorted(preset_dir.glob("*.run.json"))
    if not records:
        return None
    rows, starts = [], []
    for record in records:
        saved = json.loads(record.read_text())
        params = saved.get("parameters", {})
        starts.append(last_part_started(saved))
        rows.append({"notebook": record.name[: -len(".run.json")], "frame_rates": params.get("frame_rates", ""),
                     "threads": params.get("threads", ""), "start_s": "",
                     "duration_s": saved.get("duration_s", ""), "finished_utc": saved.get("finished_utc", ""),
                     "parts": "; ".join(part_text(p) for p in parts) if len(parts := saved.get("parts", [])) > 1
                     else ""})
    total = sum(float(r["duration_s"]) for r in rows if r["duration_s"] != "")
    last = max(r["finished_utc"] for r in rows)
    whole = whole_run(preset_dir, rows, starts)
    known = [t for t in starts if t is not None]
    origin = parse_utc(whole["started_utc"]) if whole else min(known, default=None)
    for row, started in zip(rows, starts):
        if started is not None:
            row["start_s"] = round(started - origin)
    if whole:
        rows.insert(0, {"notebook": "corpus", "frame_rates": "", "threads": "", "start_s": 0,
                        "duration_s": whole["corpus_s"], "finished_utc": "", "parts": ""})
    rows.append({"notebook": "total", "frame_rates": "", "threads": "", "start_s": "",
                 "duration_s": round(total, 1), "finished_utc": last, "parts": ""})
    if whole:
        rows.append({"notebook": "wall time", "frame_rates": "", "threads": "", "start_s": 0,
                     "duration_s": whole["wall_s"], "finished_utc": whole["finished_utc"],
                     "parts": f"--jobs {whole['jobs']}; corpus included, book not"})
    out = preset_dir / "run_times.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def last_part_started(saved: dict) -> float | None:
    """When the last run of a notebook started (epoch seconds)."""
    return part_started(part_covering(saved, set()))


def utc_text(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def whole_run(preset_dir: Path, rows: list[dict], starts: list[float | None]) -> dict | None:
    """The record of the whole run (`study_run.json`) when every notebook's last run lies within it, else None."""
    path = preset_dir / WHOLE_RUN_FILE
    if not path.is_file():
        return None
    whole = json.loads(path.read_text())
    begin = parse_utc(whole["started_utc"])
    inside = all(started is not None and begin <= started and row["finished_utc"] <= whole["finished_utc"]
                 for row, started in zip(rows, starts))
    return whole if inside else None


def record_whole_run(preset_dir: Path, args, started: float, corpus_s: float) -> None:
    """Write `study_run.json`: this run's wall time (corpus and notebooks) and its job layout."""
    finished = time.time()
    record = {"preset": args.preset, "jobs": args.jobs, "threads": args.threads, "started_utc": utc_text(started),
              "finished_utc": utc_text(finished), "corpus_s": round(corpus_s, 1),
              "wall_s": round(finished - started, 1), "cpu_count": os.cpu_count()}
    preset_dir.mkdir(parents=True, exist_ok=True)
    (preset_dir / WHOLE_RUN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def generate_corpus(args) -> str:
    """Run `compress-lib corpus` (idempotent: it reuses a complete corpus)."""
    exe = Path(sys.executable).with_name("compress-lib")
    out = corpus_dir(args.work, args.corpus_scale)
    cmd = [str(exe), "corpus", "--out", str(out), "--scale", f"{args.corpus_scale:g}"]
    print("corpus:", " ".join(cmd), flush=True)
    return "ran" if subprocess.run(cmd, cwd=ROOT).returncode == 0 else "failed"


def build_and_check_book(preset: str, quiet: bool) -> int:
    """Build the preset's book, then, for the published preset's, check its figures in Chromium when Chromium is
    installed (about a minute; `make book-check PRESET=...` checks another preset's)."""
    import build_book
    import check_figures

    status = build_book.build(preset, quiet=quiet)
    if status != 0:
        return status
    if preset != PUBLISHED_PRESET:
        print(f"figures: not checked in a browser (`make book-check PRESET={preset}` checks them)")
        return 0
    if check_figures.find_chromium() is None:
        print("figures: not checked in a browser (Chromium is not installed; `make apt` installs it)")
        return 0
    return check_figures.main([str(build_book.html_dir(preset))] + (["-q"] if quiet else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=PUBLISHED_PRESET, choices=PRESET_NAMES, help="scale (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=ROOT / "work",
                        help="folder for the corpus, checkpoints and scratch notebooks (default: work/)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR,
                        help="results root; each preset gets RESULTS/<preset>/ (default: data/results/)")
    parser.add_argument("--only", nargs="+", metavar="STEM", help="run only these notebooks, e.g. 09_efficiency")
    parser.add_argument("--force", action="store_true", help="rerun notebooks even when up to date")
    parser.add_argument("--seed", type=int, default=None, help="pass this seed to every notebook")
    parser.add_argument("--frame-ms", type=int, choices=(10, 20), default=None,
                        help="pass this frame rate to every notebook (default: each notebook's own)")
    parser.add_argument("--frame-rates", default=None, metavar="MS[,MS]",
                        help="pass frame_rates to every notebook that has it (default: the preset's, 10,20 for "
                             "the study and 20 for lab, or none with --frame-ms); e.g. 20 runs the 20 ms half first, and a later run "
                             "with the default adds 10 ms, reusing what is done (run_times.csv lists both parts)")
    parser.add_argument("--threads", type=int, default=None,
                        help="pass this CPU thread count to every notebook (1 keeps a run fast while other work "
                             "shares the machine: PyTorch's threads slow down badly on busy cores)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="notebooks run side by side where they do not depend on each other, each on one "
                             "thread; notebooks that time models run alone (default: %(default)s, up to 2 cores)")
    parser.add_argument("--split-by-rate", choices=("auto", "yes", "no"), default="auto",
                        help="with --jobs and several frame rates, run the notebooks of tools/study_plan.py marked "
                             "split_by_rate in two parts, 20 ms first (auto: at the study and paper presets, not at "
                             "smoke, whose notebooks take seconds)")
    parser.add_argument("--corpus-scale", type=float, default=None,
                        help="`compress-lib corpus --scale` (default per preset: %s)" % CORPUS_SCALE)
    parser.add_argument("--no-book", action="store_true", help="do not build the book at the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="stream the notebooks' output")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    args.work = args.work.resolve()
    args.results = args.results.resolve()
    if args.frame_rates is None:
        args.frame_rates = "" if args.frame_ms is not None else study_scale(args.preset).frame_rates_text
    if args.corpus_scale is None:
        args.corpus_scale = CORPUS_SCALE[args.preset]
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")

    known = {e.stem for e in EXPERIMENTS}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    selected = [e for e in EXPERIMENTS if not args.only or e.stem in args.only]
    absent = [rel(e.source) for e in selected if not e.source.is_file()]
    if absent:  # tools/study_plan.py names a notebook the checkout does not hold
        parser.error(f"{', '.join(absent)} missing from this checkout; restore it (git checkout -- notebooks/)")

    print(f"study: preset {args.preset}, work folder {rel(args.work)}, results in {rel(args.results / args.preset)}/")
    statuses: dict[str, tuple[str, float]] = {}
    started, clock, corpus_s = time.time(), time.perf_counter(), 0.0
    if not args.only:
        corpus_status = generate_corpus(args)
        corpus_s = time.perf_counter() - clock
        statuses["corpus"] = (corpus_status, corpus_s)
    code_sha = code_hash()
    statuses.update(run_notebooks(plan_jobs(selected, args), args, code_sha))
    if not args.only and all(status == "ran" for status, _ in statuses.values()):  # a whole run from the start
        record_whole_run(args.results / args.preset, args, started, corpus_s)

    write_run_times(args.results / args.preset)
    book_status = None
    if args.no_book:
        pass
    elif args.results != RESULTS_DIR:
        print(f"book: not built (it shows data/results/{args.preset}/, not {rel(args.results)})")
    else:
        book_status = build_and_check_book(args.preset, args.quiet)

    print(f"\nstudy summary (preset {args.preset}):")
    for name, (status, seconds) in statuses.items():
        took = f" ({seconds:.0f} s)" if seconds else ""
        print(f"  {name:<20} {status}{took}")
    if book_status is not None:
        print(f"  {'book':<20} {'built' if book_status == 0 else 'FAILED'}")
    failed = [n for n, (s, _) in statuses.items() if s == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or book_status else 0


if __name__ == "__main__":
    sys.exit(main())
