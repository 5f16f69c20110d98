"""Nothing lost, nothing silently wrong, no traceback: every user mistake or machine fault is ONE line
`error: ...` on stderr naming the path or value and the fix, with exit status 2.

Each case is one line of expectations: (id, command line, exit status, regex the single stderr line must match,
fault). The command line's {placeholders} name files the module-scoped fixture `env` builds once (a smoke corpus,
a smoke teacher, damaged checkpoints and corpora) and `{tmp}`, a fresh path per case. A fault is simulated by
monkeypatching (`FAULTS`): a full disk (torch.save's truncated-zip RuntimeError, libsndfile's "System error",
ENOSPC from a text write) and a folder without write permission (the tests run as root, where chmod does not
stop writes). Every command runs in-process through `compress_lib.cli.main`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shlex
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from compress_lib import cli

FULL = r"^error: no space left on the device writing \S.*: free some space and rerun the same command; finished " \
       r"steps are kept$"
DENIED = r"^error: (no permission to write|permission denied on) \S+"
NOT_FOLDER = r"is a file, not a folder: name a new or existing folder$"
NO_CORPUS = r"^error: corpus folder \S+ does not exist; generate it with `compress-lib corpus"
BAD_ARG = r"^error: argument {flag}: .*\(see `compress-lib {cmd} --help`\)$"
PRE = "pretrain --preset smoke --no-progress --data {corpus}"
CMP = "compress weight --preset smoke --no-progress --data {corpus} --teacher {teacher}"
EVAL = "evaluate pr --preset smoke --no-progress --data {corpus} --results-dir {tmp}/results"
PROF = "profile melhubert --preset smoke --repeats 1"
COR = "corpus --quiet --jobs 1 --scale 0.02"
SCALE = r"^error: --scale must be positive and finite, got \S+: e\.g\. 1 \(about 7 h\) or 0\.02$"


def arg_error(flag: str, cmd: str) -> str:
    return BAD_ARG.format(flag=re.escape(flag), cmd=cmd)


# (id, command line, exit status, regex of the one stderr line, fault to simulate or None)
CASES = [
    # -- argument values: checked where arguments are parsed ----------------------------------------------------
    ("pretrain-seed-negative", PRE + " --out {tmp} --seed -5", 2, arg_error("--seed", "pretrain"), None),
    ("pretrain-seed-huge", PRE + " --out {tmp} --seed 4294967296", 2, arg_error("--seed", "pretrain"), None),
    ("pretrain-seed-text", PRE + " --out {tmp} --seed abc", 2, arg_error("--seed", "pretrain"), None),
    ("pretrain-seed-float", PRE + " --out {tmp} --seed 1.5", 2, arg_error("--seed", "pretrain"), None),
    ("pretrain-unknown-preset", "pretrain --preset huge --out {tmp}", 2, arg_error("--preset", "pretrain"), None),
    ("pretrain-frame-ms-15", PRE + " --out {tmp} --frame-ms 15", 2, arg_error("--frame-ms", "pretrain"), None),
    ("pretrain-stage-3", PRE + " --out {tmp} --stage 3", 2, arg_error("--stage", "pretrain"), None),
    ("pretrain-no-out", PRE, 2, r"^error: the following arguments are required: --out", None),
    ("compress-seed-negative", CMP + " --out {tmp} --seed -1", 2, arg_error("--seed", "compress"), None),
    ("compress-unknown-preset", CMP + " --out {tmp} --preset tiny", 2, arg_error("--preset", "compress"), None),
    ("evaluate-seed-negative", EVAL + " --upstream fbank --out {tmp} --seed -3", 2, arg_error("--seed", "evaluate"),
     None),
    ("corpus-seed-negative", COR + " --out {tmp} --seed -1", 2, arg_error("--seed", "corpus"), None),
    ("corpus-scale-inf", "corpus --out {tmp} --scale inf", 2, SCALE, None),
    ("corpus-scale-minus-inf", "corpus --out {tmp} --scale=-inf", 2, SCALE, None),
    ("corpus-scale-nan", "corpus --out {tmp} --scale nan", 2, SCALE, None),
    ("corpus-scale-zero", "corpus --out {tmp} --scale 0", 2, SCALE, None),
    ("corpus-scale-negative", "corpus --out {tmp} --scale -0.5", 2, SCALE, None),
    ("corpus-scale-text", "corpus --out {tmp} --scale big", 2, arg_error("--scale", "corpus"), None),
    ("corpus-jobs-zero", "corpus --out {tmp} --jobs 0", 2, r"^error: --jobs must be at least 1, got 0$", None),
    ("corpus-jobs-negative", "corpus --out {tmp} --jobs -2", 2, r"^error: --jobs must be at least 1, got -2$", None),
    ("corpus-missing-recipe", COR + " --out {tmp} --recipe {missing}", 2, r"^error: corpus recipe \S+ does not exist",
     None),
    ("corpus-junk-recipe", COR + " --out {tmp} --recipe {file}", 2, r"^error: corpus recipe \S+ is not valid JSON",
     None),
    ("corpus-no-out", "corpus --scale 0.02", 2, r"^error: the following arguments are required: --out", None),
    ("evaluate-cache-gb-negative", EVAL + " --upstream fbank --out {tmp} --cache-gb -1", 2,
     arg_error("--cache-gb", "evaluate"), None),
    ("evaluate-cache-gb-nan", EVAL + " --upstream fbank --out {tmp} --cache-gb nan", 2,
     arg_error("--cache-gb", "evaluate"), None),
    ("evaluate-cache-gb-inf", EVAL + " --upstream fbank --out {tmp} --cache-gb inf", 2,
     arg_error("--cache-gb", "evaluate"), None),
    ("evaluate-threads-zero", EVAL + " --upstream fbank --out {tmp} --threads 0", 2,
     arg_error("--threads", "evaluate"), None),
    ("evaluate-unknown-task", "evaluate asr --upstream fbank --out {tmp}", 2, arg_error("task", "evaluate"), None),
    ("evaluate-unknown-preset", EVAL + " --upstream fbank --out {tmp} --preset big", 2,
     arg_error("--preset", "evaluate"), None),
    ("evaluate-frame-ms-30", EVAL + " --upstream fbank --out {tmp} --frame-ms 30", 2,
     arg_error("--frame-ms", "evaluate"), None),
    ("evaluate-no-upstream", "evaluate pr --out {tmp}", 2, r"^error: the following arguments are required: --upstream",
     None),
    ("profile-seconds-zero", PROF + " --seconds 0", 2, r"^error: --seconds must be > 0, got 0\.0$", None),
    ("profile-seconds-negative", PROF + " --seconds -3", 2, r"^error: --seconds must be > 0", None),
    ("profile-seconds-nan", PROF + " --seconds nan", 2, r"^error: --seconds must be > 0, got nan$", None),
    ("profile-seconds-inf", PROF + " --seconds inf", 2, r"^error: --seconds must be > 0, got inf$", None),
    ("profile-batch-zero", PROF + " --batch 0", 2, r"^error: --batch must be >= 1, got 0$", None),
    ("profile-repeats-zero", PROF + " --repeats 0", 2, r"^error: --repeats must be >= 1, got 0$", None),
    ("profile-threads-zero", PROF + " --threads 0", 2, r"^error: --threads must be >= 1, got 0$", None),
    ("profile-layers-zero", PROF + " --layers 0", 2, r"^error: --layers must be >= 1, got 0$", None),
    ("profile-heads-negative", PROF + " --heads -2", 2, r"^error: --heads must be >= 1, got -2$", None),
    ("profile-ffn-zero", PROF + " --ffn 0", 2, r"^error: --ffn must be >= 1, got 0$", None),
    ("profile-num-layers-negative", PROF + " --num-layers -1", 2, r"^error: --num-layers must be >= 0, got -1$", None),
    ("profile-num-layers-too-many", PROF + " --num-layers 99", 2, r"^error: num_layers must be in 0\.\.4, got 99$",
     None),
    ("profile-unknown-preset", "profile melhubert --preset big", 2, r"^error: unknown preset 'big'; valid: smoke", None),
    ("profile-frame-ms-15", "profile melhubert --frame-ms 15", 2, arg_error("--frame-ms", "profile"), None),
    ("profile-device-tpu", "profile melhubert --device tpu", 2, arg_error("--device", "profile"), None),
    ("profile-no-model", "profile", 2, r"^error: give a MODEL to profile", None),
    ("profile-unknown-model", "profile wav2vec9", 2, r"^error: unknown model 'wav2vec9': give a zoo name", None),
    ("profile-missing-checkpoint", "profile {missing}", 2, r"^error: unknown model \S+: give a zoo name", None),
    # -- compression settings ---------------------------------------------------------------------------------
    ("compress-unknown-method", "compress squash --teacher {teacher} --out {tmp} --data {corpus}", 2,
     r"^error: unknown compression method 'squash'; valid: weight, heads", None),
    ("compress-density-above-1", CMP + " --out {tmp} --target-density 1.5", 2,
     arg_error("--target-density", "compress"), None),
    ("compress-density-zero", CMP + " --out {tmp} --target-density 0", 2, arg_error("--target-density", "compress"),
     None),
    ("compress-density-negative", CMP + " --out {tmp} --target-density -0.2", 2,
     arg_error("--target-density", "compress"), None),
    ("compress-density-nan", CMP + " --out {tmp} --target-density nan", 2, arg_error("--target-density", "compress"),
     None),
    ("compress-density-text", CMP + " --out {tmp} --target-density half", 2,
     arg_error("--target-density", "compress"), None),
    ("compress-density-for-distill", "compress distill --teacher {teacher} --out {tmp} --data {corpus} "
     "--target-density 0.5", 2, r"^error: --target-density applies to weight, heads, ffn", None),
    ("compress-student-for-weight", CMP + " --out {tmp} --student {teacher}", 2,
     r"^error: --student applies to the combined method only$", None),
    ("compress-temperature-zero", "compress distill --teacher {teacher} --out {tmp} --temperature 0", 2,
     arg_error("--temperature", "compress"), None),
    ("compress-temperature-nan", "compress distill --teacher {teacher} --out {tmp} --temperature nan", 2,
     arg_error("--temperature", "compress"), None),
    ("compress-layers-text", "compress distill --teacher {teacher} --out {tmp} --layers two", 2,
     r"^error: --layers 'two' is not a comma-separated list", None),
    ("compress-layers-empty", "compress distill --teacher {teacher} --out {tmp} --layers ,", 2,
     r"^error: --layers is empty", None),
    ("compress-head-score-bad", CMP + " --out {tmp} --head-score random", 2, arg_error("--head-score", "compress"),
     None),
    ("compress-init-bad", CMP + " --out {tmp} --init zeros", 2, arg_error("--init", "compress"), None),
    ("compress-frame-ms-mismatch", CMP + " --out {tmp} --frame-ms 10", 2,
     r"^error: --frame-ms 10 but \S+ is a 20 ms model", None),
    ("compress-set-no-equals", CMP + " --out {tmp} --set batch_size", 2,
     r"^error: --set 'batch_size' must look like FIELD=VALUE$", None),
    ("compress-set-unknown-field", CMP + " --out {tmp} --set speed=3", 2,
     r"^error: unknown compression setting 'speed'; valid: ", None),
    ("compress-set-int-text", CMP + " --out {tmp} --set batch_size=many", 2,
     r"^error: --set batch_size='many': expected an integer$", None),
    ("compress-set-int-float", CMP + " --out {tmp} --set batch_size=2.5", 2,
     r"^error: --set batch_size='2.5': expected an integer$", None),
    ("compress-set-int-negative", CMP + " --out {tmp} --set batch_size=-4", 2,
     r"^error: --set batch_size=-4: give a finite number >= 0$", None),
    ("compress-set-float-nan", CMP + " --out {tmp} --set finetune_lr=nan", 2,
     r"^error: --set finetune_lr=nan: give a finite number >= 0$", None),
    ("compress-set-float-inf", CMP + " --out {tmp} --set clip_norm=inf", 2,
     r"^error: --set clip_norm=inf: give a finite number >= 0$", None),
    ("compress-set-float-negative", CMP + " --out {tmp} --set finetune_lr=-1e-3", 2,
     r"^error: --set finetune_lr=-0\.001: give a finite number >= 0$", None),
    ("compress-set-bool-text", CMP + " --out {tmp} --set keep_best_head=maybe", 2,
     r"^error: --set keep_best_head='maybe': expected true or false$", None),
    ("compress-set-layers-text", CMP + " --out {tmp} --set distill_layers=a,b", 2,
     r"^error: --set distill_layers='a,b': expected a comma-separated list$", None),
    # -- missing or wrong input paths ---------------------------------------------------------------------------
    ("pretrain-missing-data", "pretrain --preset smoke --data {missing} --out {tmp}", 2, NO_CORPUS, None),
    ("pretrain-data-is-file", "pretrain --preset smoke --data {file} --out {tmp}", 2, NO_CORPUS, None),
    ("pretrain-data-empty-folder", "pretrain --preset smoke --data {folder} --out {tmp}", 2,
     r"^error: \S+pretrain\.jsonl does not exist \(splits in \S+: none\)", None),
    ("compress-missing-data", "compress weight --preset smoke --teacher {teacher} --data {missing} --out {tmp}", 2,
     NO_CORPUS, None),
    ("compress-missing-teacher", "compress weight --preset smoke --teacher {missing} --data {corpus} --out {tmp}", 2,
     r"^error: --teacher \S+: checkpoint does not exist; check the path", None),
    ("compress-teacher-is-folder", "compress weight --preset smoke --teacher {teacher_dir} --data {corpus} "
     "--out {tmp}", 2, r"^error: --teacher \S+ is a folder, not a checkpoint: point at the model\.pt inside it", None),
    ("compress-teacher-is-empty-folder", "compress weight --preset smoke --teacher {folder} --data {corpus} "
     "--out {tmp}", 2, r"^error: --teacher \S+ is a folder, not a checkpoint: point at a checkpoint file", None),
    ("compress-teacher-is-text", "compress weight --preset smoke --teacher {file} --data {corpus} --out {tmp}", 2,
     r"^error: checkpoint \S+ is corrupt or not a torch file", None),
    ("compress-teacher-truncated", CMP.replace("{teacher}", "{truncated}") + " --out {tmp}", 2,
     r"^error: checkpoint \S+ is corrupt or not a torch file", None),
    ("compress-teacher-empty-file", CMP.replace("{teacher}", "{empty}") + " --out {tmp}", 2,
     r"^error: checkpoint \S+ is corrupt or not a torch file", None),
    ("compress-teacher-not-dict", CMP.replace("{teacher}", "{list_ckpt}") + " --out {tmp}", 2,
     r"^error: checkpoint \S+ does not hold a dict", None),
    ("compress-teacher-nan", CMP.replace("{teacher}", "{nan_teacher}") + " --out {tmp}", 2,
     r"^error: checkpoint \S+nan\.pt is damaged: \S+ holds NaN or infinite weights; rerun the step", None),
    ("compress-teacher-inf", CMP.replace("{teacher}", "{inf_teacher}") + " --out {tmp}", 2,
     r"^error: checkpoint \S+inf\.pt is damaged: \S+ holds NaN or infinite weights", None),
    ("compress-teacher-wrong-shape", CMP.replace("{teacher}", "{shape_teacher}") + " --out {tmp}", 2,
     r"^error: checkpoint \S+ is damaged: layers\.0\.fc1\.weight has shape \(3, 3\) but its recorded architecture "
     r"needs \(64, 32\)", None),
    ("compress-teacher-missing-key", CMP.replace("{teacher}", "{missing_key_teacher}") + " --out {tmp}", 2,
     r"^error: \S+: weights do not match the recorded architecture", None),
    ("compress-teacher-other-arch", CMP.replace("{teacher}", "{other_arch}") + " --out {tmp}", 2,
     r"^error: \S+ holds a 'hubert' model, not a MelHuBERT", None),
    ("compress-teacher-public", CMP.replace("{teacher}", "{public}") + " --out {tmp}", 2,
     r"^error: checkpoint \S+ is not a compress_lib checkpoint: it looks like a checkpoint of the public MelHuBERT "
     r"code; convert it with `compress-lib import-checkpoint`$", None),
    ("compress-teacher-bad-config", CMP.replace("{teacher}", "{bad_config}") + " --out {tmp}", 2,
     r"^error: unknown MelHuBERT config keys \['colour'\]", None),
    ("compress-teacher-no-targets", CMP.replace("{teacher}", "{synth}") + " --out {tmp}", 2,
     r"^error: \S+ records no pretraining targets", None),
    ("compress-missing-student", "compress combined --preset smoke --teacher {teacher} --data {corpus} --out {tmp} "
     "--student {missing}", 2, r"^error: --student \S+: checkpoint does not exist", None),
    ("compress-student-is-folder", "compress combined --preset smoke --teacher {teacher} --data {corpus} --out {tmp} "
     "--student {folder}", 2, r"^error: --student \S+ is a folder, not a checkpoint", None),
    ("evaluate-missing-data", "evaluate pr --upstream fbank --data {missing} --out {tmp}", 2, NO_CORPUS, None),
    ("evaluate-missing-upstream", EVAL + " --out {tmp} --upstream {missing}.pt", 2,
     r"^error: .*\S+missing\.pt", None),
    ("evaluate-upstream-unknown-name", EVAL + " --out {tmp} --upstream wav2vec9", 2, r"^error: .*wav2vec9", None),
    ("evaluate-upstream-is-folder", EVAL + " --out {tmp} --upstream {teacher_dir}", 2,
     r"^error: --upstream \S+ is a folder, not a checkpoint: point at the model\.pt inside it", None),
    ("evaluate-random-init-folder", EVAL + " --out {tmp} --upstream random-init:{teacher_dir}", 2,
     r"^error: --upstream \S+ is a folder, not a checkpoint", None),
    ("evaluate-upstream-nan", EVAL + " --out {tmp} --upstream {nan_teacher}", 2,
     r"^error: checkpoint \S+ is damaged: \S+ holds NaN or infinite weights", None),
    ("evaluate-upstream-text", EVAL + " --out {tmp} --upstream {file}", 2, r"^error: checkpoint \S+ is corrupt", None),
    ("evaluate-upstream-public", EVAL + " --out {tmp} --upstream {public}", 2,
     r"^error: checkpoint \S+ is not a compress_lib checkpoint", None),
    ("profile-checkpoint-folder", "profile {teacher_dir}", 2,
     r"^error: MODEL \S+ is a folder, not a checkpoint: point at the model\.pt inside it", None),
    ("profile-checkpoint-text", "profile {file}", 2, r"^error: checkpoint \S+ is corrupt or not a torch file", None),
    ("profile-checkpoint-nan", "profile {nan_teacher}", 2, r"^error: checkpoint \S+ is damaged", None),
    ("profile-checkpoint-public", "profile {public}", 2, r"^error: checkpoint \S+ is not a compress_lib checkpoint", None),
    ("import-missing", "import-checkpoint {missing} --out {tmp}/m.pt", 2,
     r"^error: PATH \S+: checkpoint does not exist", None),
    ("import-path-is-folder", "import-checkpoint {folder} --out {tmp}/m.pt", 2,
     r"^error: PATH \S+ is a folder, not a checkpoint", None),
    ("import-text-file", "import-checkpoint {file} --out {tmp}/m.pt", 2, r"^error: cannot read \S+ \(", None),
    ("import-compress-lib-checkpoint", "import-checkpoint {teacher} --out {tmp}/m.pt", 2,
     r"^error: \S+ is already a compress_lib checkpoint; use it directly$", None),
    ("import-not-public", "import-checkpoint {list_ckpt} --out {tmp}/m.pt", 2,
     r"^error: \S+ is not a public MelHuBERT checkpoint", None),
    ("import-wrong-shape", "import-checkpoint {public_bad_shape} --out {tmp}/m.pt", 2,
     r"^error: \S+: tensor layers\.1\.fc2\.weight has shape \(32, 7\) but the checkpoint's own config and other "
     r"weights call for \(32, 48\)", None),
    ("import-unsupported-config", "import-checkpoint {public_prenorm} --out {tmp}/m.pt", 2,
     r"^error: the checkpoint uses layer_norm_first=True; compress_lib supports only False$", None),
    ("import-no-config", "import-checkpoint {public_no_config} --out {tmp}/m.pt", 2,
     r"^error: Upstream_Config holds neither 'melhubert' nor 'hubert'", None),
    # -- --out, --results-dir, --cache-dir: a file, a folder where a file is needed, under a file ------------------
    ("pretrain-out-is-file", PRE + " --out {file}", 2, r"^error: --out \S+ " + NOT_FOLDER, None),
    ("pretrain-out-under-file", PRE + " --out {file}/run", 2, r"^error: --out \S+ lies under \S+, which is a file",
     None),
    ("compress-out-is-file", CMP + " --out {file}", 2, r"^error: --out \S+ " + NOT_FOLDER, None),
    ("compress-out-under-file", CMP + " --out {file}/x", 2, r"^error: --out \S+ lies under \S+, which is a file",
     None),
    ("evaluate-out-is-file", EVAL + " --upstream fbank --out {file}", 2, r"^error: --out \S+ " + NOT_FOLDER, None),
    ("evaluate-results-dir-is-file", "evaluate pr --preset smoke --data {corpus} --upstream fbank --out {tmp} "
     "--results-dir {file}", 2, r"^error: --results-dir \S+ " + NOT_FOLDER, None),
    ("evaluate-results-under-file", "evaluate pr --preset smoke --data {corpus} --upstream fbank --out {tmp} "
     "--results-dir {file}/r", 2, r"^error: --results-dir \S+ lies under \S+, which is a file", None),
    ("evaluate-cache-dir-is-file", EVAL + " --upstream fbank --out {tmp} --cache-dir {file}", 2,
     r"^error: --cache-dir \S+ " + NOT_FOLDER, None),
    ("evaluate-summary-is-folder", "evaluate pr --preset smoke --data {corpus} --upstream fbank --out {tmp} "
     "--results-dir {folder_summary_root}", 2, r"^error: summary table \S+summary\.csv is a folder", None),
    ("evaluate-summary-junk", "evaluate pr --preset smoke --data {corpus} --upstream fbank --out {tmp} "
     "--results-dir {junk_summary_root}", 2,
     r"^error: summary table \S+summary\.csv is not a compress_lib summary .*: move it aside or delete it", None),
    ("evaluate-summary-binary", "evaluate pr --preset smoke --data {corpus} --upstream fbank --out {tmp} "
     "--results-dir {binary_summary_root}", 2, r"^error: summary table \S+summary\.csv is not a compress_lib summary",
     None),
    ("import-out-is-folder", "import-checkpoint {public} --out {folder}", 2,
     r"^error: --out \S+ is a folder: name the file to write, e.g\. \S+melhubert\.pt$", None),
    ("import-out-under-file", "import-checkpoint {public} --out {file}/m.pt", 2,
     r"^error: --out \S+ lies under \S+, which is a file", None),
    ("corpus-out-is-file", COR + " --out {file}", 2, r"^error: --out \S+ " + NOT_FOLDER, None),
    ("corpus-out-under-file", COR + " --out {file}/c", 2, r"^error: --out \S+ lies under \S+, which is a file", None),
    ("corpus-out-not-empty", COR + " --out {teacher_dir}", 2,
     r"^error: --out \S+ is not empty and holds no corpus\.json", None),
    ("corpus-other-seed", COR + " --out {corpus} --seed 7", 2,
     r"^error: --out \S+ holds a corpus of seed 0, scale 0\.02, not seed 7, scale 0\.02: choose another --out, or "
     r"pass --force to replace it$", None),
    ("corpus-other-scale", "corpus --quiet --jobs 1 --scale 0.05 --out {corpus}", 2,
     r"^error: --out \S+ holds a corpus of seed 0, scale 0\.02, not seed 0, scale 0\.05", None),
    ("corpus-converted", COR + " --out {converted}", 2,
     r"^error: --out \S+ holds a converted \(converted\) corpus, not a generated one", None),
    # -- read-only folders (simulated: the tests run as root) ---------------------------------------------------
    ("pretrain-out-read-only", PRE + " --out {tmp}/run", 2, DENIED, "no_access"),
    ("compress-out-read-only", CMP + " --out {tmp}/run", 2, DENIED, "no_access"),
    ("evaluate-out-read-only", EVAL + " --upstream fbank --out {tmp}/e", 2, DENIED, "no_access"),
    ("corpus-out-read-only", COR + " --out {tmp}/c", 2, DENIED, "no_access"),
    ("import-out-read-only", "import-checkpoint {public} --out {tmp}/m.pt", 2, DENIED, "no_access"),
    ("pretrain-mkdir-denied", PRE + " --out {tmp}/run", 2, r"^error: permission denied on \S+run", "mkdir_denied"),
    ("compress-mkdir-denied", CMP + " --out {tmp}/run", 2, r"^error: permission denied on \S+run", "mkdir_denied"),
    ("corpus-mkdir-denied", COR + " --out {tmp}/c", 2, r"^error: permission denied on \S+c", "mkdir_denied"),
    ("import-mkstemp-denied", "import-checkpoint {public} --out {tmp}/m.pt", 2, r"^error: permission denied on \S+",
     "mkstemp_denied"),
    ("pretrain-mkstemp-denied", PRE + " --out {tmp}/run", 2, r"^error: permission denied on \S+", "mkstemp_denied"),
    # -- a full disk ---------------------------------------------------------------------------------------------
    ("pretrain-disk-full-torch", PRE + " --out {tmp}/run", 2, FULL, "torch_full"),
    ("pretrain-disk-full-enospc", PRE + " --out {tmp}/run", 2, FULL, "torch_enospc"),
    ("pretrain-disk-full-json", PRE + " --out {tmp}/run", 2, FULL, "text_full"),
    ("compress-disk-full-torch", CMP + " --out {tmp}/run", 2, FULL, "torch_full"),
    ("compress-disk-full-enospc", CMP + " --out {tmp}/run", 2, FULL, "torch_enospc"),
    ("import-disk-full-torch", "import-checkpoint {public} --out {tmp}/m.pt", 2, FULL, "torch_full"),
    ("import-disk-full-quota", "import-checkpoint {public} --out {tmp}/m.pt", 2, FULL, "torch_quota"),
    ("corpus-disk-full-wav", COR + " --out {tmp}/c", 2, FULL, "wav_full"),
    ("corpus-disk-full-json", COR + " --out {tmp}/c", 2, FULL, "text_full"),
    ("corpus-io-error-wav", COR + " --out {tmp}/c", 2,
     r"^error: the system refused to read or write \S+\.wav \(Input/output error", "wav_io_error"),
    ("evaluate-disk-full-json", EVAL + " --upstream fbank --out {tmp}/e", 2, FULL, "text_full"),
    # -- damaged corpora -----------------------------------------------------------------------------------------
    ("pretrain-nan-wav", "pretrain --preset smoke --no-progress --data {bad_nan} --out {tmp}", 2,
     r"^error: audio file \S+bad\.wav holds NaN or infinite samples; it is damaged: regenerate", None),
    ("pretrain-inf-wav", "pretrain --preset smoke --no-progress --data {bad_inf} --out {tmp}", 2,
     r"^error: audio file \S+bad\.wav holds NaN or infinite samples", None),
    ("pretrain-stereo-wav", "pretrain --preset smoke --no-progress --data {bad_stereo} --out {tmp}", 2,
     r"^error: audio file \S+bad\.wav has 2 channels; compress_lib reads mono speech", None),
    ("pretrain-empty-wav", "pretrain --preset smoke --no-progress --data {bad_empty} --out {tmp}", 2,
     r"^error: audio file \S+bad\.wav is empty \(0 bytes\)", None),
    ("pretrain-text-as-wav", "pretrain --preset smoke --no-progress --data {bad_text} --out {tmp}", 2,
     r"^error: audio file \S+bad\.wav is not readable audio", None),
    ("pretrain-truncated-wav", "pretrain --preset smoke --no-progress --data {bad_truncated} --out {tmp}", 2,
     r"^error: audio file \S+bad\.wav is truncated", None),
    ("pretrain-no-samples-wav", "pretrain --preset smoke --no-progress --data {bad_nosamples} --out {tmp}", 2,
     r"^error: audio file \S+bad\.wav (holds no samples|is not readable audio)", None),
    ("pretrain-missing-wav", "pretrain --preset smoke --no-progress --data {bad_missing} --out {tmp}", 2,
     r"^error: \S+pretrain\.jsonl:1: audio file \S+ does not exist", None),
    ("pretrain-junk-manifest", "pretrain --preset smoke --no-progress --data {bad_manifest} --out {tmp}", 2,
     r"^error: \S+pretrain\.jsonl:1: not a JSON object", None),
    ("evaluate-nan-wav", "evaluate pr --preset smoke --no-progress --upstream fbank --no-summary --data {bad_nan_pr} --out {tmp}",
     2, r"^error: audio file \S+bad\.wav holds NaN or infinite samples", None),
    ("evaluate-long-utterance", "evaluate pr --preset smoke --no-summary --data {long_pr} --out {tmp} "
     "--upstream {teacher}", 2,
     r"^error: utterance \S+ \(1,000,000 s\) is too long for this machine: 50,000,000 frames need .* GiB of "
     r"attention scores per layer .*: use at most [\d,]+ frames", None),
    # -- memory guard ------------------------------------------------------------------------------------------
    ("profile-hour-of-speech", PROF + " --seconds 3600", 2,
     r"^error: 3600 s x batch 1 is too long for this machine: 180,000 frames need 241\.4 GiB of attention scores "
     r"per layer \(batch 1 x 2 heads x frames\^2 x 4 bytes\), over the limit of 50% of the [\d.,]+ GiB available "
     r"\(cpu\): use at most [\d,]+ frames", None),
    ("profile-long-batch", PROF + " --seconds 600 --batch 64", 2, r"^error: 600 s x batch 64 is too long", None),
    ("profile-day-10ms", PROF + " --seconds 86400 --frame-ms 10", 2, r"^error: 86400 s x batch 1 is too long", None),
    ("profile-checkpoint-long", "profile {teacher} --seconds 36000 --repeats 1", 2,
     r"^error: 36000 s x batch 1 is too long", None),
    ("profile-zoo-long", "profile distilhubert --seconds 7200", 2, r"^error: 7200 s x batch 1 is too long", None),
]


# -- faults ----------------------------------------------------------------------------------------------------
TORCH_TRUNCATED = "[enforce fail at inline_container.cc:672] . unexpected pos 110016 vs 109904"


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


def _no_access(monkeypatch, tmp):
    """A folder without write permission: os.access says no for everything under the test's tmp folder."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).startswith(str(tmp)) and mode & os.W_OK
                        else real(p, mode, **kw))


def _mkdir_denied(monkeypatch, tmp):
    real = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(tmp)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)


def _mkstemp_denied(monkeypatch, tmp):
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(tmp)):
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / "x.tmp"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _wav_fault(code):
    def install(monkeypatch, tmp):
        def write(*args, **kwargs):
            sf._ffi.errno = code  # what a failed write(2) inside libsndfile leaves behind
            raise sf.LibsndfileError(2)  # "System error."

        monkeypatch.setattr(sf, "write", write)
    return install


def _text_full(monkeypatch, tmp):
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if str(self).startswith(str(tmp)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


FAULTS = {
    "no_access": _no_access,
    "mkdir_denied": _mkdir_denied,
    "mkstemp_denied": _mkstemp_denied,
    "torch_full": lambda mp, tmp: mp.setattr(torch, "save", _raise(RuntimeError(TORCH_TRUNCATED))),
    "torch_enospc": lambda mp, tmp: mp.setattr(torch, "save", _raise(OSError(errno.ENOSPC, "No space left on device"))),
    "torch_quota": lambda mp, tmp: mp.setattr(torch, "save", _raise(OSError(errno.EDQUOT, "Disk quota exceeded"))),
    "wav_full": _wav_fault(errno.ENOSPC),
    "wav_io_error": _wav_fault(errno.EIO),
    "text_full": _text_full,
}


# -- the shared files -----------------------------------------------------------------------------------------
def _save_variant(src: Path, dst: Path, change) -> Path:
    obj = torch.load(src, map_location="cpu", weights_only=True)
    change(obj)
    torch.save(obj, dst)
    return dst


def _bad_corpus(root: Path, corpus: Path, name: str, split: str, write_bad, duration: float | None = None) -> Path:
    """A copy of the corpus's manifests (audio shared by a link) whose first `split` row is a bad file."""
    out = root / name
    out.mkdir()
    (out / "wav").symlink_to(corpus / "wav")
    for manifest in corpus.glob("*.jsonl"):
        shutil.copy(manifest, out / manifest.name)
    shutil.copy(corpus / "corpus.json", out / "corpus.json")
    lines = (out / f"{split}.jsonl").read_text().splitlines()
    if write_bad is None:  # a manifest row that is not JSON
        lines[0] = "{not json"
    else:
        row = json.loads(lines[0])
        row["path"] = "bad/bad.wav"
        if duration is not None:
            row["path"] = json.loads(lines[0])["path"]
            row["duration"] = duration
        else:
            (out / "bad").mkdir()
            write_bad(out / "bad" / "bad.wav")
        lines[0] = json.dumps(row)
    (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return out


def _float_wav(value):
    def write(path):
        x = np.full(16000, 0.1, dtype=np.float32)
        x[100:200] = value
        sf.write(str(path), x, 16000, subtype="FLOAT")
    return write


def _truncated_wav(path):
    sf.write(str(path), np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_AUDIO = {
    "nan": _float_wav(np.nan),
    "inf": _float_wav(np.inf),
    "stereo": lambda p: sf.write(str(p), np.zeros((16000, 2), dtype=np.float32), 16000),
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("this is not audio\n" * 20),
    "truncated": _truncated_wav,
    "nosamples": lambda p: sf.write(str(p), np.zeros((0,), dtype=np.int16), 16000, subtype="PCM_16"),
    "missing": lambda p: None,
}


def _teacher_with_targets(path: Path) -> Path:
    """A random smoke MelHuBERT recording stage-1 (log-Mel k-means) targets, as `compress` needs: no training."""
    from compress_lib.checkpoint import save_checkpoint
    from compress_lib.config import config_for_preset
    from compress_lib.model import MelHuBERT

    torch.manual_seed(0)
    model = MelHuBERT(config_for_preset("smoke", 20, num_clusters=16))
    save_checkpoint(path, model, preset="smoke", frame_ms=20, stage=1, steps=6,
                    targets=dict(kind="logmel", num_clusters=16, seed=0, frame_ms=20))
    return path


@pytest.fixture(scope="module")
def env(smoke_corpus, tmp_path_factory) -> dict:
    """Every file the cases name, made once: a pretrained smoke teacher and damaged variants of everything."""
    from conftest import make_synthetic_teacher
    from test_import import CONFIG, public_state_dict, save_public

    from compress_lib.data.features import load_features

    root = tmp_path_factory.mktemp("faults")
    teacher = _teacher_with_targets(root / "pretrain" / "model.pt")
    # the corpus's pretraining features are cached up front, so that a fault injected into every torch.save hits
    # the run's own files whichever case runs first
    load_features(smoke_corpus, "pretrain", 20, progress=False)
    paths = {"corpus": smoke_corpus, "teacher": teacher, "teacher_dir": teacher.parent,
             "missing": root / "missing", "folder": root / "empty_folder"}
    paths["folder"].mkdir()
    (root / "synth").mkdir()
    paths["synth"] = make_synthetic_teacher(root / "synth", 2)[0]
    paths["file"] = root / "plain.txt"
    paths["file"].write_text("not what you think\n")
    paths["empty"] = root / "empty.pt"
    paths["empty"].write_bytes(b"")
    paths["truncated"] = root / "truncated.pt"
    paths["truncated"].write_bytes(teacher.read_bytes()[:5000])
    paths["list_ckpt"] = root / "list.pt"
    torch.save([1, 2, 3], paths["list_ckpt"])

    def nan_first(obj):
        key = next(k for k, v in obj["state_dict"].items() if v.is_floating_point())
        obj["state_dict"][key] = torch.full_like(obj["state_dict"][key], float("nan"))

    def inf_one(obj):
        obj["state_dict"]["layers.1.fc2.weight"][0, 0] = float("inf")

    paths["nan_teacher"] = _save_variant(teacher, root / "nan.pt", nan_first)
    paths["inf_teacher"] = _save_variant(teacher, root / "inf.pt", inf_one)
    paths["shape_teacher"] = _save_variant(teacher, root / "shape.pt",
                                           lambda o: o["state_dict"].__setitem__("layers.0.fc1.weight",
                                                                                 torch.zeros(3, 3)))
    paths["missing_key_teacher"] = _save_variant(teacher, root / "missing_key.pt",
                                                 lambda o: o["state_dict"].pop("layers.0.fc1.bias"))
    paths["other_arch"] = _save_variant(teacher, root / "other_arch.pt", lambda o: o.__setitem__("arch", "hubert"))
    paths["bad_config"] = _save_variant(teacher, root / "bad_config.pt",
                                        lambda o: o["config"].__setitem__("colour", "blue"))
    paths["public"] = root / "public.ckpt"
    save_public(paths["public"], public_state_dict())
    bad = public_state_dict()
    bad["encoder.layers.1.fc2.weight"] = torch.zeros(32, 7)
    paths["public_bad_shape"] = root / "public_bad_shape.ckpt"
    save_public(paths["public_bad_shape"], bad)
    paths["public_prenorm"] = root / "public_prenorm.ckpt"
    save_public(paths["public_prenorm"], public_state_dict(), config=dict(CONFIG, layer_norm_first=True))
    paths["public_no_config"] = root / "public_no_config.ckpt"
    save_public(paths["public_no_config"], public_state_dict(), key="wav2vec")
    for name, content in (("junk", "this,is\nnot,a summary\n"), ("binary", None), ("folder", "")):
        summary = root / f"{name}_summary" / "smoke" / "summary.csv"
        if name == "folder":
            summary.mkdir(parents=True)
        else:
            summary.parent.mkdir(parents=True)
            summary.write_bytes(bytes(range(256)) if content is None else content.encode())
        paths[f"{name}_summary_root"] = summary.parent.parent
    converted = root / "converted"
    converted.mkdir()
    (converted / "corpus.json").write_text(json.dumps({"kind": "converted", "status": "complete"}))
    paths["converted"] = converted
    for kind, write in BAD_AUDIO.items():
        paths[f"bad_{kind}"] = _bad_corpus(root, smoke_corpus, f"bad_{kind}", "pretrain", write)
    paths["bad_manifest"] = _bad_corpus(root, smoke_corpus, "bad_manifest", "pretrain", None)
    paths["bad_nan_pr"] = _bad_corpus(root, smoke_corpus, "bad_nan_pr", "pr-train", BAD_AUDIO["nan"])
    paths["long_pr"] = _bad_corpus(root, smoke_corpus, "long_pr", "pr-test", BAD_AUDIO["nan"], duration=1e6)
    return paths


def run_cli(argv, capsys) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit status, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse exits for bad arguments
        status = exc.code if isinstance(exc.code, int) else 1
    return status, capsys.readouterr().err


def one_error_line(err: str) -> str:
    """The single line of stderr (progress bars excluded; there should be none)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    return lines[0]


@pytest.mark.parametrize("argv, status, pattern, fault", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fault_is_one_line(argv, status, pattern, fault, env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing a case writes by default lands in the repository
    words = [w.format(**env, tmp=tmp_path / "t") for w in shlex.split(argv)]
    if fault is not None:
        FAULTS[fault](monkeypatch, tmp_path)
    got, err = run_cli(words, capsys)
    line = one_error_line(err)
    assert got == status, line
    assert re.search(pattern, line), f"{line!r} does not match {pattern!r}"


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


# -- the boundary in main(): exceptions a command lets through -------------------------------------------------
BOUNDARY = [
    ("permission", PermissionError(errno.EACCES, "Permission denied", "/srv/out/x.pt"), 2,
     r"^error: permission denied on /srv/out/x\.pt: choose a path you can write to"),
    ("not-a-directory", NotADirectoryError(errno.ENOTDIR, "Not a directory", "/srv/file/sub"), 2,
     r"^error: /srv/file/sub is not a folder \(a file stands where a folder is needed\)"),
    ("is-a-directory", IsADirectoryError(errno.EISDIR, "Is a directory", "/srv/out"), 2,
     r"^error: /srv/out is a folder where a file is needed: name a file \(e\.g\. /srv/out/model\.pt\)$"),
    ("file-exists", FileExistsError(errno.EEXIST, "File exists", "/srv/out"), 2,
     r"^error: /srv/out already exists as a file where a folder is needed"),
    ("enospc", OSError(errno.ENOSPC, "No space left on device", "/srv/out/a.pt"), 2,
     r"^error: no space left on the device writing /srv/out/a\.pt: free some space and rerun"),
    ("edquot", OSError(errno.EDQUOT, "Disk quota exceeded", "/srv/q.pt"), 2, r"^error: no space left on the device"),
    ("enospc-no-name", OSError(errno.ENOSPC, "No space left on device"), 2,
     r"^error: no space left on the device writing: free some space"),
    ("torch-unexpected-pos", RuntimeError(TORCH_TRUNCATED), 2, r"^error: no space left on the device"),
    ("torch-stream-writer", RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed "
                                         "writing file data/3: file write failed"), 2,
     r"^error: no space left on the device"),
    ("read-only-fs", OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x"), 2,
     r"^error: the system refused to read or write /mnt/ro/x \(Read-only file system\)"),
    ("io-error", OSError(errno.EIO, "Input/output error", "/dev/x"), 2,
     r"^error: the system refused to read or write /dev/x \(Input/output error\)"),
    ("missing-file", FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/such"), 2,
     r"^error: the system refused to read or write /no/such \(No such file or directory\)"),
    ("interrupt", KeyboardInterrupt(), 130, r"^interrupted; rerun the same command to resume"),
]


@pytest.mark.parametrize("exc, status, pattern", [b[1:] for b in BOUNDARY], ids=[b[0] for b in BOUNDARY])
def test_boundary_turns_a_fault_into_one_line(exc, status, pattern, monkeypatch, capsys):
    fake = types.SimpleNamespace(add_arguments=lambda parser: None, run=_raise(exc))
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"fake": ("fake", "a fake step")})
    monkeypatch.setattr(cli, "_load", lambda module: fake)
    got, err = run_cli(["fake"], capsys)
    line = one_error_line(err)
    assert got == status
    assert re.search(pattern, line), f"{line!r} does not match {pattern!r}"


@pytest.mark.parametrize("exc", [RuntimeError("shape mismatch in matmul"), ValueError("a bug"), OSError("no errno")],
                         ids=["runtime-error", "value-error", "oserror-without-errno"])
def test_boundary_lets_a_bug_through(exc, monkeypatch, capsys):
    """Only recognised faults become one line; a bug keeps its traceback (narrow recognition)."""
    fake = types.SimpleNamespace(add_arguments=lambda parser: None, run=_raise(exc))
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"fake": ("fake", "a fake step")})
    monkeypatch.setattr(cli, "_load", lambda module: fake)
    with pytest.raises(type(exc)):
        cli.main(["fake"])


@pytest.mark.slow
def test_no_progress_hides_every_bar(env, tmp_path, capsys):
    """`pretrain --no-progress` prints no progress bar, not even stage 2's feature extraction."""
    status = cli.main(["pretrain", "--preset", "smoke", "--no-progress", "--data", str(env["corpus"]),
                       "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 0
    assert "features" not in err and "%|" not in err, err


def test_real_read_only_folder_is_one_line(env, tmp_path, capsys):
    """With a real chmod (skipped as root, where chmod does not stop writes)."""
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions; the monkeypatched cases cover this")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        status, err = run_cli(["import-checkpoint", str(env["public"]), "--out", str(ro / "m.pt")], capsys)
    finally:
        ro.chmod(0o700)
    assert status == 2 and re.search(DENIED, one_error_line(err))


def test_seed_type_accepts_the_full_range():
    from compress_lib.commands.checks import seed_arg

    assert seed_arg("0") == 0 and seed_arg(str(2**32 - 1)) == 2**32 - 1
    with pytest.raises(argparse.ArgumentTypeError):
        seed_arg("-1")
