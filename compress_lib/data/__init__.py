"""Data: the stand-in corpus, real-corpus converters, audio, features and k-means targets.

- `manifest`: the dataset interface (`read_split`, `Utterance`, `SPLITS`, `PHONES`).
- `audio`: `load_audio` (16 kHz mono float32, clear errors for bad files).
- `features`: `log_mel`, `stack_pairs`, `load_features` (normalised, cached), `feature_stats`.
- `kmeans`: `stage1_targets` (log-Mel) and `stage2_targets` (a model's hidden states).
- `generate`: the embedded stand-in corpus (`generate_corpus`); `real`: LibriSpeech / VoxCeleb1 converters.
"""
