"""compress_lib: a reproducible study of compressing self-supervised speech Transformers.

Reproduces "Is Smaller Always Faster? Tradeoffs in Compressing Self-Supervised Speech Transformers" (Lin et al.):
MelHuBERT and its pretraining, four compression methods, efficiency metrics and SUPERB-style evaluation.
"""

from compress_lib.config import MelHuBERTConfig
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT

__version__ = "0.1.0"
__all__ = ["CompressLibError", "MelHuBERT", "MelHuBERTConfig", "__version__"]
