"""`compress-lib import-checkpoint PATH --out CKPT`: convert a public MelHuBERT checkpoint to compress_lib's format.

The result loads in every other command (`compress`, `evaluate`, `profile`) like a checkpoint of
`compress-lib pretrain`, and computes the same hidden states as the public code.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("path", type=Path, help="checkpoint of the public MelHuBERT code (.ckpt / .pt)")
    parser.add_argument("--out", required=True, type=Path, help="where to write the compress_lib checkpoint")
    parser.add_argument("--trust", action="store_true",
                        help="unpickle arbitrary Python objects in the file (only for files from a trusted source)")


def run(args) -> int:
    from compress_lib.checkpoint import save_checkpoint
    from compress_lib.errors import check_input_file, check_output_file
    from compress_lib.import_checkpoint import read_public_checkpoint

    check_input_file(args.path, "PATH", inside="melhubert.ckpt")
    check_output_file(args.out, "--out", example="melhubert.pt")
    model, masks, meta = read_public_checkpoint(args.path, trust=args.trust)
    save_checkpoint(args.out, model, masks=masks, **meta)
    cfg = model.cfg
    print(f"imported a {cfg.frame_ms} ms MelHuBERT: {cfg.num_layers} layers, d={cfg.embed_dim}, "
          f"{sum(cfg.layer_heads)} heads, {model.num_parameters() / 1e6:.2f} M parameters without the cluster head"
          f"{', weight-pruning masks kept' if masks else ''} -> {args.out}")
    return 0
