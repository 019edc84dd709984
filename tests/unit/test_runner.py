"""The local runner, as every host's runner behaves (the SSH one runs the same methods
over a session channel: tests/integration/test_sandbox.py): run with input, timeouts
and Ctrl-C that end the whole tree, put (a folder whole or not at all, no command-line
size limit), fetch, and errors that name the host."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ops.errors import OpsError
from ops.runtime.runner import LOCAL, LocalRunner

from .test_shell import _alive


def test_run_feeds_input_and_reads_both_streams():
    ok = LOCAL.run(["sh", "-c", "cat; echo err >&2"], input="hello")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "hello", "err\n")
    assert LOCAL.run(["sh", "-c", "exit 3"], check=False).returncode == 3
    early = LOCAL.run(["true"], input="x" * (1 << 20))  # exits without reading: no error here
    assert early.ok


def test_a_failure_is_one_line_naming_the_host_and_the_step():
    with pytest.raises(OpsError, match=r"^list things failed \(exit 2\): nope$"):
        LOCAL.run(["sh", "-c", "echo partial; echo nope >&2; exit 2"], "list things")
    node = LocalRunner("local", prefix=True)
    with pytest.raises(OpsError, match=r"^local: list things failed \(exit 1\): only stdout$"):
        node.run(["sh", "-c", "echo only stdout; exit 1"], "list things")


def test_a_run_that_times_out_ends_what_it_started(tmp_path):
    pids = tmp_path / "pids"
    with pytest.raises(OpsError, match="stuck: timed out after 1s"):
        LOCAL.run(["sh", "-c", f"sleep 30 & echo $! > {pids}; setsid sleep 31 & echo $! >> {pids}; wait"],
                  "stuck", timeout=1)
    found = [int(p) for p in pids.read_text().split()]
    assert len(found) == 2 and not [p for p in found if _alive(p)]


@pytest.fixture
def sigint_raises():
    """Ctrl-C as a terminal delivers it (a run started in the background by a
    non-interactive shell inherits SIGINT ignored: set the disposition here)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_stops_the_run_and_its_child_at_once(tmp_path, sigint_raises):
    marker = tmp_path / "still-running"
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        LOCAL.run(f"sleep 5 && touch {marker}")
    assert time.monotonic() - started < 4  # not after the child finished on its own
    time.sleep(5.5)
    assert not marker.exists()  # the child was stopped, not left running


def test_put_replaces_a_folder_whole_with_no_command_line_limit(tmp_path):
    folder = str(tmp_path / "release")
    big = os.urandom(1 << 20)  # beyond one argument's 128 KiB: it travels on stdin
    LOCAL.put(folder, {"base.json": "{}", "blob.bin": big})
    assert sorted(os.listdir(folder)) == ["base.json", "blob.bin"]
    assert (tmp_path / "release" / "blob.bin").read_bytes() == big
    LOCAL.put(folder, {"blue.json": "[]"})  # replaced, not merged
    assert os.listdir(folder) == ["blue.json"] and not (tmp_path / "release.partial").exists()
    assert oct((tmp_path / "release" / "blue.json").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "A.json", "a b", "x;rm"])
def test_put_refuses_a_file_name_that_could_leave_the_folder(tmp_path, name):
    with pytest.raises(ValueError):
        LOCAL.put(str(tmp_path / "r"), {name: ""})
    assert not (tmp_path / "r").exists()


def test_fetch_reads_a_file_and_says_nothing_for_a_missing_one(tmp_path):
    (tmp_path / "upstream.conf").write_text("set $api blue;\n")
    assert LOCAL.fetch(str(tmp_path / "upstream.conf")) == "set $api blue;\n"
    assert LOCAL.fetch(str(tmp_path / "missing")) == ""


def test_attached_hands_back_the_exit_status_and_stderr_when_asked():
    result = LOCAL.attached(["sh", "-c", "echo to the terminal; echo why >&2; exit 4"],
                            capture_stderr=True)
    assert (result.returncode, result.stderr) == (4, "why\n")
