"""`compress-lib corpus`: generate the embedded stand-in corpus, or convert LibriSpeech / VoxCeleb1.

Generate (the default corpus of the study; needs Debian's espeak-ng, flite and wordnet-base):

    compress-lib corpus --out work/corpus [--scale 1] [--seed 0] [--jobs 2]

Convert real corpora into the same manifests (nothing is copied; the manifests point at your files):

    compress-lib corpus --out work/real --from-librispeech /data/LibriSpeech --lexicon librispeech-lexicon.txt \\
        --from-voxceleb /data/VoxCeleb1 [--voxceleb-split /data/VoxCeleb1/iden_split.txt]
"""

from __future__ import annotations

import argparse
import math
import os
import time

from compress_lib.commands.checks import seed_arg
from compress_lib.data.manifest import SPLITS
from compress_lib.errors import CompressLibError, check_output_folder

EPILOG = """\
examples:
  compress-lib corpus --out work/corpus                      generate the stand-in corpus (about 7 h)
  compress-lib corpus --out /tmp/tiny --scale 0.02           a tiny one, in seconds
  compress-lib corpus --out work/real --from-librispeech /data/LibriSpeech --lexicon librispeech-lexicon.txt \\
      --from-voxceleb /data/VoxCeleb1                        manifests of the real corpora (nothing copied)

splits written to OUT/<split>.jsonl (one JSON object per utterance: id, path, duration, speaker, phones, text):
  pretrain                    generated: 32 espeak-ng + 4 flite speakers  | LibriSpeech: the train-* subsets present
  pr-train, pr-dev, pr-test   generated: rhotic voices, dev/test speakers held out | LibriSpeech: train-clean-100,
                              dev-clean, test-clean (phones from --lexicon, stress digits dropped: 39 CMU phones)
  sid-train, sid-dev, sid-test  generated: 60 augmented speakers in all three | VoxCeleb1: iden_split.txt 1 / 2 / 3
OUT/corpus.json records the engine versions, seed, scale, counts and (generated) the trivial speaker-ID baseline.
Rerunning with the same seed and scale reuses a complete corpus (--force regenerates); OUT holding a corpus
of another seed or scale is an error unless --force (which replaces it). The files are byte-identical
whatever --jobs. See data/corpus/README.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--out", required=True, help="corpus folder to write (new, empty, or a corpus of ours)")
    gen = parser.add_argument_group("generate the stand-in corpus")
    gen.add_argument("--scale", type=float, default=1.0, help="size: 1 = about 7 h; 0.02 = seconds (tests)")
    gen.add_argument("--seed", type=seed_arg, default=0, help="fixes every voice, sentence and augmentation")
    gen.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel synthesis processes")
    gen.add_argument("--recipe", help="recipe JSON (default: data/corpus/recipe.json)")
    gen.add_argument("--force", action="store_true", help="regenerate even if OUT holds this corpus already")
    real = parser.add_argument_group("convert real corpora instead")
    real.add_argument("--from-librispeech", metavar="ROOT", help="LibriSpeech folder (holding train-clean-100/ ...)")
    real.add_argument("--lexicon", metavar="FILE", help="word-to-phone lexicon for LibriSpeech (`WORD AH0 B ...`)")
    real.add_argument(
        "--librispeech-pretrain",
        default="train-clean-100,train-clean-360,train-other-500",
        metavar="SUBSETS",
        help="comma-separated subsets forming `pretrain` (those present are used; default: all 960 h)",
    )
    real.add_argument("--from-voxceleb", metavar="ROOT", help="VoxCeleb1 folder (holding wav/ or dev/wav, test/wav)")
    real.add_argument("--voxceleb-split", metavar="FILE", help="identification split (default: ROOT/iden_split.txt)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    start = time.perf_counter()
    check_values(args)
    check_output_folder(args.out)
    if args.from_librispeech or args.from_voxceleb or args.lexicon:
        from compress_lib.data.real import convert_corpora

        info = convert_corpora(
            args.out,
            librispeech=args.from_librispeech,
            lexicon=args.lexicon,
            voxceleb=args.from_voxceleb,
            voxceleb_split=args.voxceleb_split,
            pretrain_subsets=tuple(s.strip() for s in args.librispeech_pretrain.split(",") if s.strip()),
            progress=not args.quiet,
        )
    else:
        from compress_lib.data.generate import generate_corpus, read_corpus_info

        before = read_corpus_info(args.out)
        if not args.force:
            check_same_corpus(args.out, before, args.seed, args.scale)
        info = generate_corpus(
            args.out,
            scale=args.scale,
            seed=args.seed,
            jobs=args.jobs,
            progress=not args.quiet,
            recipe_path=args.recipe,
            force=args.force,
        )
        if before == info and not args.force:
            print(f"{args.out} already holds this corpus (seed {args.seed}, scale {args.scale}); --force regenerates")
    print(report(info, time.perf_counter() - start))
    return 0


def check_values(args) -> None:
    """--scale is a finite number > 0 (not nan, inf, 0 or negative), --jobs at least 1: before any work."""
    if not (math.isfinite(args.scale) and args.scale > 0):
        raise CompressLibError(f"--scale must be positive and finite, got {args.scale}: e.g. 1 (about 7 h) or 0.02")
    if args.jobs < 1:
        raise CompressLibError(f"--jobs must be at least 1, got {args.jobs}")


def check_same_corpus(out, info: dict | None, seed: int, scale: float) -> None:
    """Refuse to overwrite a corpus of another kind, seed or scale without --force (it took time to make)."""
    if not info:
        return
    if info.get("kind") != "generated":
        raise CompressLibError(f"--out {out} holds a converted ({info.get('kind')}) corpus, not a generated one: "
                               "choose another --out, or pass --force to replace it")
    old_seed, old_scale = info.get("seed"), info.get("scale")
    if old_seed != seed or old_scale != float(scale):
        raise CompressLibError(f"--out {out} holds a corpus of seed {old_seed}, scale {old_scale}, not seed {seed}, "
                               f"scale {scale}: choose another --out, or pass --force to replace it")


def report(info: dict, seconds: float) -> str:
    """The summary table printed after generation or conversion."""
    lines = [f"{'split':<10} {'utterances':>10} {'hours':>7} {'speakers':>8}"]
    for split in SPLITS:
        if split in info["splits"]:
            s = info["splits"][split]
            lines.append(f"{split:<10} {s['utterances']:>10} {s['hours']:>7.3f} {s['speakers']:>8}")
    total = sum(s["hours"] for s in info["splits"].values())
    lines.append(f"{'total':<10} {sum(s['utterances'] for s in info['splits'].values()):>10} {total:>7.3f}")
    b = info.get("trivial_sid_baseline")
    if b:
        lines.append(
            f"trivial speaker-ID baseline ({b['features']}, {b['speakers']} speakers, chance {b['chance']:.1%}): "
            f"Gaussian, shared covariance: test {b['gaussian_shared_cov_test_accuracy']:.1%} "
            f"(dev {b['gaussian_shared_cov_dev_accuracy']:.1%}); "
            f"diagonal: test {b['gaussian_diagonal_test_accuracy']:.1%}"
        )
    lines.append(f"done in {seconds:.1f} s")
    return "\n".join(lines)
