"""The example api's kept connection (compose/api/app/reuse.py, standard library only):
a stale reused connection is replaced once; a fresh one's failure is the answer."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "app_reuse", Path(__file__).resolve().parents[2] / "compose" / "api" / "app" / "reuse.py")
reuse = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reuse)


class Conn:
    def __init__(self, n, broken=False):
        self.n, self.broken, self.closed = n, broken, False

    def run(self):
        if self.broken:
            raise ConnectionError(f"conn {self.n} broken")
        return self.n

    def close(self):
        self.closed = True


def test_a_connection_is_reused_and_a_stale_one_replaced_once():
    made = []

    def open_():
        made.append(Conn(len(made) + 1))
        return made[-1]

    kept = reuse.Kept(open_, lambda c: c.close())
    assert kept.call(lambda c: c.run()) == 1 and kept.call(lambda c: c.run()) == 1
    made[0].broken = True  # the server restarted under it
    assert kept.call(lambda c: c.run()) == 2
    assert made[0].closed and len(made) == 2


def test_a_fresh_connection_that_fails_is_the_answer():
    made = []

    def open_():
        made.append(Conn(len(made) + 1, broken=True))
        return made[-1]

    kept = reuse.Kept(open_, lambda c: c.close())
    with pytest.raises(ConnectionError, match="conn 1 broken"):
        kept.call(lambda c: c.run())
    assert len(made) == 1  # no retry on a connection just made

    def refuse():
        raise OSError("connection refused")

    with pytest.raises(OSError, match="refused"):
        reuse.Kept(refuse, lambda c: c.close()).call(lambda c: c.run())
