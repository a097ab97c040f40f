"""What the ``modellens`` command shows on the terminal, and where everything else goes.

A command prints its result (stdout), its own messages (``modellens: ...`` on stderr) and, on a terminal, one
progress bar redrawn in place; nothing else. Library logging (Dask's scheduler and nannies, numba, the model
workers' log lines) and Python warnings go to a log file, ``<MODELLENS_HOME>/logs/modellens.log``, or to stderr
with ``-v``. Child processes (model workers, Dask workers) inherit file descriptor 2, so while a command runs fd 2
points at the log file and ``sys.stderr`` at a duplicate of the real stderr: whatever a library or a child writes
to fd 2 lands in the log, the command's own messages on the terminal. When stderr is not the process's fd 2 (an
in-process caller that captures it), only the logging is routed.

When stderr is not a terminal (piped, CI), progress is at most one line per quarter of the work, never a line
redrawn with carriage returns.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["LOG_NAME", "Progress", "common_options", "parse_rows", "routed_logs", "say"]

LOG_NAME = "modellens.log"
_LOG_MAX_BYTES = 10_000_000  # one rotation (modellens.log.1) when it grows past this
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def parse_rows(text: str | None) -> list[int] | None:
    """Row selection like ``0,5,9`` or ``0-39,50``: a list of row positions (None: all rows)."""
    if not text:
        return None
    rows: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            start, end = part.split("-", 1)
            rows.extend(range(int(start), int(end) + 1))
        else:
            rows.append(int(part))
    return rows


_TRUST_HELP = "trust pickles: load them with the plain unpickler (your own files, on your own machine only)"


def common_options(*, top: bool) -> argparse.ArgumentParser:
    """``--trust`` and ``-v``, accepted before or after the command (a command's copy never resets them)."""
    common = argparse.ArgumentParser(add_help=False)
    default: Any = False if top else argparse.SUPPRESS
    common.add_argument("--trust", action="store_true", default=default, help=_TRUST_HELP)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="library and worker logs on stderr instead of the log file <MODELLENS_HOME>/logs/modellens.log",
    )
    return common


def say(message: str) -> None:
    """One ``modellens: ...`` line for the user on stderr (the terminal, even while fd 2 is the log)."""
    print(f"modellens: {message}", file=sys.stderr, flush=True)


def _open_log(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_NAME
    with contextlib.suppress(OSError):
        if path.stat().st_size > _LOG_MAX_BYTES:
            path.replace(path.with_name(LOG_NAME + ".1"))
    return path


def _stderr_fd() -> int | None:
    """2 when ``sys.stderr`` writes to the process's fd 2 (a real run), else None (captured in-process)."""
    try:
        return 2 if sys.stderr.fileno() == 2 else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def routed_logs(log_folder: Path, *, verbose: bool) -> Iterator[Path | None]:
    """Send library logs, warnings and children's stderr to the log file (or to stderr when ``verbose``).

    Yields:
        The log file's path, or None with ``verbose`` or when the log folder cannot be written (logs on stderr).
    """
    root = logging.getLogger()
    level = os.environ.get("MODELLENS_LOG_LEVEL", "INFO").upper()
    saved_handlers, saved_level = root.handlers[:], root.level
    logging.captureWarnings(True)
    path = None
    if not verbose:
        try:
            path = _open_log(log_folder)
        except OSError as exc:  # an unwritable MODELLENS_HOME: warnings and errors stay on stderr
            level = "WARNING"
            print(f"modellens: no log file in {log_folder} ({exc.strerror}); warnings go to stderr", file=sys.stderr)
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path is not None else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.handlers = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
    fd = None if path is None else _stderr_fd()
    terminal, saved_stderr = None, sys.stderr
    if fd is not None and path is not None:  # path is None: verbose, or no log file
        sys.stderr.flush()
        terminal = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        with path.open("ab") as log_file:
            os.dup2(log_file.fileno(), fd)
        sys.stderr = terminal
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        handler.close()
        root.handlers, root.level = saved_handlers, saved_level
        if terminal is not None and fd is not None:
            terminal.flush()
            os.dup2(terminal.fileno(), fd)
            sys.stderr = saved_stderr
            terminal.close()


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal; when piped, one line per quarter or none."""

    def __init__(self, *, piped_lines: bool = True, width: int = 24) -> None:
        self.width = width
        self.tty = sys.stderr.isatty()
        self.piped_lines = piped_lines
        self._quarter = -1
        self._drawn = False

    def update(self, fraction: float, text: str) -> None:
        """Show ``fraction`` (0..1) done, described by ``text``."""
        fraction = min(max(fraction, 0.0), 1.0)
        if self.tty:
            filled = round(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            sys.stderr.write(f"\r\x1b[K[{bar}] {text}")
            sys.stderr.flush()
            self._drawn = True
        elif self.piped_lines and int(fraction * 4) > self._quarter:
            self._quarter = int(fraction * 4)
            print(f"modellens: {text}", file=sys.stderr, flush=True)

    def clear(self) -> None:
        """Erase the bar (on a terminal) so the next line starts clean."""
        if self.tty and self._drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._drawn = False
