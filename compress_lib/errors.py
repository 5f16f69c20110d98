"""One exception type for every mistake a user can make.

Raise `CompressLibError` with a message that names what is wrong *and* how to fix it. The command-line entry
point prints it as one line (`error: ...`) and exits non-zero, never with a traceback.
"""


class CompressLibError(Exception):
    """A user-facing error: bad input, missing data, an unknown name. The message names the fix."""


def check_choice(value: str, choices, what: str) -> str:
    """Return `value` if it is one of `choices`, else raise an error listing the valid ones."""
    choices = list(choices)
    if value not in choices:
        raise CompressLibError(f"unknown {what} {value!r}; valid: {', '.join(map(str, choices))}")
    return value
