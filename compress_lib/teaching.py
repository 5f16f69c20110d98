"""Check cells for the exercises of the lab notebook (notebooks/13_lab.md) and of the experiment notebooks.

    check_number(exercise, answer, expected, tolerance, hint)     a number read off a table or computed
    check_option(exercise, answer, expected, options, hint)       one of a few named answers
    check_function(exercise, fn, cases, tolerance, hint)          a function the student wrote, on given cases
    faster_option(times, margin)                                  the options a timing table says are faster

Each prints "right" when the answer is right, prints "not answered yet" when the answer is still None (the
notebook runs on, so that a class can run it top to bottom first), and raises `WrongAnswer` (an
AssertionError) with a hint otherwise; they return None, so a check cell shows only that line. Every expected
value comes from a measurement or a closed form the notebook computed just before, never from a number typed
into the notebook: on another machine the timings differ, and the check follows them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence


class WrongAnswer(AssertionError):
    """A check cell's answer is wrong; the message says what was expected and gives a hint."""


def _unanswered(exercise: str, answer) -> bool:
    """True (and says so) when the answer is still None."""
    if answer is None:
        print(f"Exercise {exercise}: not answered yet. Replace the None above with your answer and run the cell "
              "again (the solution is in the collapsed cell below the exercise).")
        return True
    return False


def _right(exercise: str, detail: str = "") -> None:
    print(f"Exercise {exercise}: right{': ' + detail if detail else '.'}")


def check_number(exercise: str, answer, expected: float, tolerance: float = 0.05, hint: str = "") -> None:
    """`answer` within `tolerance` (relative) of `expected`."""
    if _unanswered(exercise, answer):
        return
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
        raise WrongAnswer(f"Exercise {exercise}: give a number, got {answer!r}")
    if abs(answer - expected) > tolerance * abs(expected):
        raise WrongAnswer(f"Exercise {exercise}: {answer:.4g} is not within {tolerance:.0%} of the value this "
                          f"notebook measured or computed. {hint}".rstrip())
    _right(exercise, f"{answer:.4g} (expected {expected:.4g})")


def check_option(exercise: str, answer, expected, options: Sequence, hint: str = "") -> None:
    """`answer` is one of `options` and equals `expected` (a list of acceptable options is accepted too)."""
    if _unanswered(exercise, answer):
        return
    if answer not in options:
        raise WrongAnswer(f"Exercise {exercise}: answer one of {', '.join(map(repr, options))}; got {answer!r}")
    acceptable = expected if isinstance(expected, (list, tuple, set)) else [expected]
    if answer not in acceptable:
        raise WrongAnswer(f"Exercise {exercise}: {answer!r} does not match this notebook's measurement. {hint}".rstrip())
    _right(exercise, repr(answer))


def check_function(exercise: str, fn: Callable | None, cases: Sequence[tuple[tuple, float]], tolerance: float = 0.01,
                   hint: str = "") -> None:
    """`fn(*args)` within `tolerance` (relative) of the expected value for every (args, expected) case."""
    if _unanswered(exercise, fn):
        return
    if not callable(fn):
        raise WrongAnswer(f"Exercise {exercise}: give a function, got {fn!r}")
    for args, expected in cases:
        got = fn(*args)
        if isinstance(got, bool) or not isinstance(got, (int, float)) or \
                abs(got - expected) > tolerance * abs(expected):
            raise WrongAnswer(f"Exercise {exercise}: for {args} your function gives {got!r}, expected {expected:,} "
                              f"(within {tolerance:.0%}). {hint}".rstrip())
    _right(exercise, f"{len(cases)} cases within {tolerance:.0%}")


def faster_option(times: dict[str, Sequence[float]], margin: float = 0.03) -> list[str]:
    """The options a timing table supports as the faster one: the option with the lower median time, or every
    option when the medians lie within `margin` of each other (too close to call on this machine)."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    fastest = min(medians, key=medians.get)
    slowest = max(medians.values())
    if slowest - medians[fastest] <= margin * medians[fastest]:
        return sorted(medians)
    return [fastest]
