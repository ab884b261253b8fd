"""Error reporting as the WebUI does it: print to stderr and carry on. Reports are also kept in
``reported`` so tests can look at them."""

import sys
import traceback

reported: list[str] = []


def report(message: str, *, exc_info: bool = False) -> None:
    text = message + ("\n" + traceback.format_exc() if exc_info else "")
    reported.append(text)
    print("***", text, file=sys.stderr)


def display(e: Exception, task: str, *, full_traceback: bool = False) -> None:
    report(f"Error {task}: {type(e).__name__}: {e}", exc_info=True)


def print_error(message: str, exc_info: bool = False) -> None:
    report(message, exc_info=exc_info)
