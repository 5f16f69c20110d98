"""The `compress-lib` command line: help lists the subcommands; every user mistake is one line and a non-zero
exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from compress_lib import cli
from compress_lib.errors import CompressLibError

EXE = Path(sys.executable).with_name("compress-lib")


def run_main(argv, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse exits for --help and bad arguments
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str):
    assert status != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line of error, got:\n{err}"
    assert lines[0].startswith("error: ")


def test_installed_console_script_help_lists_every_subcommand():
    assert EXE.is_file(), f"{EXE} missing: run `make install`"
    result = subprocess.run([str(EXE), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps long help lines
    for name, (_, help_text) in cli.SUBCOMMANDS.items():
        assert f" {name} " in text
        assert help_text in text


def test_installed_console_script_bad_argument_is_one_line():
    result = subprocess.run([str(EXE), "profile", "--no-such-option"], capture_output=True, text=True, timeout=120)
    assert_one_line_error(result.returncode, result.stderr)
    assert "--help" in result.stderr  # the one line names where to look


@pytest.mark.parametrize(
    "argv",
    [[], ["no-such-command"], ["--no-such-option"], ["profile", "--no-such-option"]],
    ids=["no-command", "unknown-command", "unknown-option", "unknown-subcommand-option"],
)
def test_bad_arguments_are_one_line(argv, capsys):
    status, _, err = run_main(argv, capsys)
    assert_one_line_error(status, err)


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_each_subcommand_rejects_an_unknown_option_in_one_line(name, capsys):
    status, _, err = run_main([name, "--definitely-not-an-option"], capsys)
    assert_one_line_error(status, err)


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_each_subcommand_has_help(name, capsys):
    status, out, _ = run_main([name, "--help"], capsys)
    assert status == 0
    assert out.startswith("usage: compress-lib " + name)


def test_version(capsys):
    status, out, _ = run_main(["--version"], capsys)
    assert status == 0 and out.strip().startswith("compress-lib ")


def test_user_error_from_a_subcommand_is_one_line(monkeypatch, capsys):
    def run(args):
        raise CompressLibError("no checkpoint at x.pt; run `compress-lib pretrain` first")

    fake = types.SimpleNamespace(add_arguments=lambda parser: None, run=run)
    monkeypatch.setattr(cli, "SUBCOMMANDS", {"fake": ("fake", "a fake step")})
    monkeypatch.setattr(cli, "_load", lambda module: fake)
    status, _, err = run_main(["fake"], capsys)
    assert_one_line_error(status, err)
    assert "run `compress-lib pretrain` first" in err
