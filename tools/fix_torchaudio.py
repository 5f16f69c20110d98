"""Make torchaudio's pure-Python parts importable beside a CPU build of torch.

Every torchaudio wheel on PyPI for x86_64 links its compiled extension against CUDA libraries. Beside the CPU
build of torch, `import torchaudio` then fails with "libc10_cuda.so: cannot open shared object file". The
project only uses torchaudio's pure-Python parts (Kaldi fbank, resampling, edit distance), which work once the
compiled extension is absent: torchaudio then treats it as not built. This script moves the extension aside
(into `_disabled_cuda_ext/`) when torch has no CUDA, and does nothing otherwise. Idempotent.
"""

import importlib.util
import pathlib
import shutil
import subprocess
import sys


def main() -> int:
    import torch

    spec = importlib.util.find_spec("torchaudio")
    if spec is None or spec.origin is None:
        print("fix_torchaudio: torchaudio is not installed", file=sys.stderr)
        return 1
    lib_dir = pathlib.Path(spec.origin).parent / "lib"
    if torch.version.cuda is None:
        aside = lib_dir.parent / "_disabled_cuda_ext"
        aside.mkdir(exist_ok=True)
        for so in lib_dir.glob("*.so"):
            shutil.move(str(so), aside / so.name)
    # Check in a fresh interpreter that the parts the project uses work.
    check = "import torch, torchaudio.compliance.kaldi as k; k.fbank(torch.zeros(1, 400), num_mel_bins=40)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    if result.returncode != 0:
        print("fix_torchaudio: torchaudio still fails to import:\n" + result.stderr[-2000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
