"""`compress-lib corpus`: generate the embedded stand-in corpus, or convert LibriSpeech / VoxCeleb1.

Generate (the default corpus of the study; needs Debian's espeak-ng, flite and wordnet-base):

    compress-lib corpus --out work/corpus [--scale 1] [--seed 0] [--jobs 2]

Convert real corpora into the same manifests (nothing is copied; the manifests point at your files):

    compress-lib corpus --out work/real --from-librispeech /data/LibriSpeech --lexicon librispeech-lexicon.txt \\
        --from-voxceleb /data/VoxCeleb1 [--voxceleb-split /data/VoxCeleb1/iden_split.txt]
"""

from __future__ import annotations

import argparse
import os
import time

from compress_lib.data.manifest import SPLITS

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
Rerunning with the same seed and scale reuses a complete corpus (--force regenerates); the files are
byte-identical whatever --jobs. See data/corpus/README.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--out", required=True, help="corpus folder to write (new, empty, or a corpus of ours)")
    gen = parser.add_argument_group("generate the stand-in corpus")
    gen.add_argument("--scale", type=float, default=1.0, help="size: 1 = about 7 h; 0.02 = seconds (tests)")
    gen.add_argument("--seed", type=int, default=0, help="fixes every voice, sentence and augmentation")
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
