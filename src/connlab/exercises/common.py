"""What a check or a marked place says to the student: one line, no traceback."""

from __future__ import annotations


class _OneLine(Exception):
    """An exception Jupyter shows as its message alone.

    IPython renders an exception through ``_render_traceback_`` when it has one, so the student
    reads the sentence instead of a stack of frames from inside the lab.
    """

    label = "error"

    def _render_traceback_(self) -> list[str]:
        return [f"{self.label}: {self}"]


class YourTurn(_OneLine, NotImplementedError):
    """Raised at a marked place of an exercise notebook: the code to write there is yours."""

    label = "Your turn"


class CheckFailed(_OneLine, AssertionError):
    """A check found a mistake; the message is one sentence naming it."""

    label = "Check failed"


def fail(sentence: str) -> None:
    raise CheckFailed(sentence)


def passed(sentence: str) -> None:
    print(f"✓ {sentence}")


def run_piece(what: str, fn, *args, hint: str = ""):
    """Call the student's ``fn``; an exception from inside it becomes one sentence naming it."""
    try:
        return fn(*args)
    except (YourTurn, CheckFailed):
        raise
    except Exception as error:  # the student's code: any error is theirs to read, in one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fail(f"{what} raised {type(error).__name__}: {first}" + (f" — {hint}" if hint else ""))
