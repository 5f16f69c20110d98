"""compress_lib: a reproducible study of compressing self-supervised speech Transformers.

Reproduces "Is Smaller Always Faster? Tradeoffs in Compressing Self-Supervised Speech Transformers" (Lin et al.):
MelHuBERT and its pretraining, four compression methods, efficiency metrics and SUPERB-style evaluation.
"""

import warnings

# In a notebook without ipywidgets, tqdm's bars fall back to text and warn once with a machine path. Filtered here,
# before any module of the package imports tqdm, so that no executed page carries that warning.
warnings.filterwarnings("ignore", message="IProgress not found")

from compress_lib.config import MelHuBERTConfig  # noqa: E402
from compress_lib.errors import CompressLibError  # noqa: E402
from compress_lib.model import MelHuBERT  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CompressLibError", "MelHuBERT", "MelHuBERTConfig", "__version__"]
