"""Progress of long transfers: drawn on a terminal only, never under --cron/--json or
into a pipe; the text says bytes, rate and time left."""

from __future__ import annotations

import io
import time

from ops import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_render_says_bytes_rate_and_time_left():
    assert progress.render("worker: sent", 12 * 2**20, 40 * 2**20, 1.5) == (
        "worker: sent 12.0 MiB of 40.0 MiB, 8.0 MiB/s, 4 s left")
    assert progress.render("app-db/app: dumped", 3000, None, 2.0) == (
        "app-db/app: dumped 2.9 KiB, 1.5 KiB/s")  # no total: no time left
    assert progress.render("x", 0, 10, 0.0) == "x 0 B of 10 B"


def test_a_terminal_gets_one_redrawn_line_cleared_at_the_end():
    out = Terminal()
    board = progress.Board(out, interval=0)
    with progress.meter("manager: sent", 100, board) as a, progress.meter("worker: sent", 100, board) as b:
        a.add(50)
        b.add(25)
    text = out.getvalue()
    assert "\r" in text and "manager: sent 50 B of 100 B" in text
    assert "manager: sent 50 B of 100 B" in text.split("\r")[-3] and "worker: sent 25 B" in text
    assert text.endswith("\r") and text.split("\r")[-2].strip() == ""  # cleared
    assert "\n" not in text


def test_a_pipe_and_quiet_get_nothing(monkeypatch, tmp_path):
    pipe = io.StringIO()
    board = progress.Board(pipe, interval=0)
    with progress.meter("x", 10, board) as m:
        m.add(5)
    assert pipe.getvalue() == ""
    monkeypatch.setattr(progress, "_QUIET", False)
    out = Terminal()
    quiet_board = progress.Board(out, interval=0)
    progress.quiet()
    with progress.meter("x", 10, quiet_board) as m:
        m.add(5)
    assert out.getvalue() == ""


def test_a_file_written_by_another_process_is_watched(monkeypatch, tmp_path):
    monkeypatch.setattr(progress, "_QUIET", False)
    out = Terminal()
    board = progress.Board(out, interval=0.05)
    path = tmp_path / "dump.partial"
    with progress.watching(path, "app-db/app: dumped", board=board):
        path.write_bytes(b"x" * 4096)
        time.sleep(0.3)
    assert "app-db/app: dumped 4.0 KiB" in out.getvalue()


def test_an_offsite_upload_draws_rclones_own_stats_and_a_failure_is_one_line(monkeypatch, tmp_path):
    """A real rclone to a `local`-type remote, slowed so that its stats come twice: the
    meter follows them; a refused copy says rclone's error, not a JSON log line."""
    import os

    import pytest

    from ops.backup import offsite
    from ops.errors import OpsError

    monkeypatch.setattr(progress, "_QUIET", False)
    out = Terminal()
    monkeypatch.setattr(progress, "BOARD", progress.Board(out, interval=0))
    o = offsite.Offsite(["t:"], None, "hash", {"RCLONE_CONFIG_T_TYPE": "local",
                                              "RCLONE_BWLIMIT": "2M"})
    src = tmp_path / "app-20261207T000000Z.dump"
    src.write_bytes(os.urandom(5 << 20))
    offsite._copy(o, str(src), f"t:{tmp_path}/remote/{src.name}", "upload", src.stat().st_size)
    assert (tmp_path / "remote" / src.name).read_bytes() == src.read_bytes()
    drawn = [t.strip() for t in out.getvalue().split("\r") if t.strip()]
    assert any(t.startswith(f"{src.name}: sent ") and " of 5.0 MiB" in t for t in drawn), drawn
    assert out.getvalue().endswith("\r")  # cleared once done

    with pytest.raises(OpsError, match=r"^upload: .*(not a directory|no such file)") as exc:
        offsite._copy(o, str(src), f"t:{src}/under-a-file/x", "upload", 1)
    assert "{" not in str(exc.value)
