"""Progress of long transfers on a terminal: bytes, rate and time left, on one line that
is redrawn (twice a second at most) and cleared when done. Several transfers at once
(one per host) share the line.

Nothing is drawn when stderr is not a terminal, or when the task turned it off
(`--cron`, `--json`: `quiet()`): a log or a pipe gets no carriage returns."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

_QUIET = False


def quiet() -> None:
    """No progress for the rest of this process (--cron, --json)."""
    global _QUIET
    _QUIET = True


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def render(label: str, done: int, total: int | None, elapsed: float) -> str:
    """`label 12.0 MiB of 40.0 MiB, 8.0 MiB/s, 4 s left` (pure)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{label} {size(done)}" + (f" of {size(total)}" if total else "")
    if rate:
        text += f", {size(rate)}/s"
        if total and total > done:
            text += f", {int((total - done) / rate + 0.5)} s left"
    return text


class Board:
    """The one line the meters of this process draw on."""

    def __init__(self, out=None, interval: float = 0.5):
        self.out = out or sys.stderr
        self.interval = interval
        self._lock = threading.Lock()
        self._meters: list[Meter] = []
        self._drawn = 0.0
        self._width = 0

    @property
    def shown(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return not _QUIET and bool(isatty and isatty())

    def meter(self, label: str, total: int | None = None) -> Meter:
        m = Meter(self, label, total)
        with self._lock:
            self._meters.append(m)
        return m

    def draw(self, force: bool = False) -> None:
        if not self.shown:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._drawn < self.interval:
                return
            self._drawn = now
            text = " | ".join(m.text(now) for m in self._meters)
            pad = max(0, self._width - len(text))
            self._width = len(text)
            self.out.write("\r" + text + " " * pad)
            self.out.flush()

    def remove(self, meter: Meter) -> None:
        with self._lock:
            if meter in self._meters:
                self._meters.remove(meter)
            clear = self.shown and not self._meters and self._width
            if clear:
                self.out.write("\r" + " " * self._width + "\r")
                self.out.flush()
                self._width = 0
        if self._meters:
            self.draw(force=True)


class Meter:
    def __init__(self, board: Board, label: str, total: int | None):
        self.board, self.label, self.total = board, label, total
        self.done = 0
        self.started = time.monotonic()

    def text(self, now: float) -> str:
        return render(self.label, self.done, self.total, now - self.started)

    def add(self, n: int) -> None:
        self.done += n
        self.board.draw()

    def set(self, done: int) -> None:
        self.done = done
        self.board.draw()

    def close(self) -> None:
        self.board.remove(self)


BOARD = Board()


@contextmanager
def meter(label: str, total: int | None = None, board: Board | None = None):
    """A meter for the length of the block; its line cleared at the end."""
    m = (board or BOARD).meter(label, total)
    try:
        yield m
    finally:
        m.close()


@contextmanager
def watching(path: Path, label: str, total: int | None = None, board: Board | None = None):
    """A meter fed by the size of a file another process writes (pg_dump, rclone):
    polled twice a second for the length of the block."""
    board = board or BOARD
    if not board.shown:
        yield
        return
    stop = threading.Event()
    with meter(label, total, board) as m:
        def poll():
            while not stop.wait(board.interval):
                try:
                    m.set(path.stat().st_size)
                except OSError:
                    pass

        thread = threading.Thread(target=poll, name=f"progress-{label}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
