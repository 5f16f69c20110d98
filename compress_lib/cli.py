"""The `compress-lib` command line: one subcommand per step of the study.

Each subcommand lives in `compress_lib/commands/<name>.py` with two functions, `add_arguments(parser)` and
`run(args) -> int`. Errors a user can fix (`CompressLibError`, bad arguments) print one line and exit 2;
never a traceback. So do machine faults (a full disk, a folder without write permission, a file where a folder
is needed): `main` is the one boundary that turns them into `error: <what> <path>: <fix>` (see
`compress_lib.errors.describe_fault`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from compress_lib.errors import CompressLibError, describe_fault

# name -> (module under compress_lib.commands, one-line help)
SUBCOMMANDS = {
    "corpus": ("corpus", "generate the embedded stand-in speech corpus"),
    "pretrain": ("pretrain", "pretrain MelHuBERT (two-stage masked prediction)"),
    "import-checkpoint": ("import_checkpoint", "convert a public MelHuBERT checkpoint to compress_lib's format"),
    "compress": ("compress", "compress a pretrained MelHuBERT (weight, heads, ffn, distill, truncate, combined)"),
    "evaluate": ("evaluate", "SUPERB-style downstream evaluation (pr: phone recognition, sid: speaker ID)"),
    "profile": ("profile", "parameters, MACs per second of speech, real-time factor of a model"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (exit 2) instead of usage + message."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="compress-lib", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _load(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    mod = _load(args._module)
    try:
        return int(mod.run(args) or 0)
    except CompressLibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except (OSError, RuntimeError) as exc:
        message = describe_fault(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


def _load(module: str):
    """compress_lib.commands.<module>: its arguments and its run() (its heavy imports wait until run())."""
    return importlib.import_module(f"compress_lib.commands.{module}")


def _version() -> str:
    from compress_lib import __version__

    return f"compress-lib {__version__}"


if __name__ == "__main__":
    sys.exit(main())
