"""How the runner finds a process tree through /proc (what end_tree signals)."""

import os
import signal
import threading

import pytest

from ops.runtime.runner import descendants, parent_of


@pytest.fixture
def sigint_raises():
    """Ctrl-C as a terminal delivers it. A run started in the background by a
    non-interactive shell inherits SIGINT *ignored* (then Python never raises
    KeyboardInterrupt and the child shell ignores it too): set the disposition here."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _interrupt_soon(delay: float = 0.5) -> threading.Timer:
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_parent_of_reads_past_a_command_name_with_spaces_and_parens():
    assert parent_of("4242 (docker (cli) x) S 17 4242 17 0 -1") == 17


def test_descendants_walks_the_tree(tmp_path):
    for pid, ppid in ((10, 1), (11, 10), (12, 11), (13, 1)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (sh) S {ppid} 0 0")
    assert sorted(descendants(10, proc=tmp_path)) == [11, 12]
    assert descendants(13, proc=tmp_path) == []
