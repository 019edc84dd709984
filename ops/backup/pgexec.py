"""Running the Postgres tools inside a database container with `docker exec -i`.

Streams go through pipes in fixed-size chunks, so memory stays constant whatever the
database size; every exit status is collected and checked by the caller.
"""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ..commands import pg
from ..errors import OpsError
from ..shell import display

CHUNK = 1 << 20


class DbUnavailable(OpsError):
    """The database could not be reached (container down, server not accepting)."""


@dataclass(frozen=True)
class Target:
    service: str
    container: str  # container id
    image: str
    user: str
    db: str

    def label(self) -> str:
        return f"{self.service}/{self.db}"


def exec_argv(container: str, argv: list[str], stdin: bool = False) -> list[str]:
    return ["docker", "exec", *(["-i"] if stdin else []), container, *argv]


def run_sql(container: str, user: str, db: str, sql: str, timeout: float = 60) -> str:
    argv = exec_argv(container, pg.psql(user, db), stdin=True)
    try:
        proc = subprocess.run(argv, input=sql, text=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DbUnavailable(f"{db}: query timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise _classify(proc.stderr, f"psql on {db}")
    return proc.stdout


def retrying(attempts: int, max_wait: float = 10.0) -> Retrying:
    """Retries transient unavailability only (container restarting, server starting up)."""
    return Retrying(stop=stop_after_attempt(max(1, attempts)),
                    wait=wait_exponential(multiplier=1, min=1, max=max_wait),
                    retry=retry_if_exception_type(DbUnavailable), reraise=True)


def retry_sql(container: str, user: str, db: str, sql: str, attempts: int = 3) -> str:
    for attempt in retrying(attempts):
        with attempt:
            return run_sql(container, user, db, sql)
    raise AssertionError("unreachable")


def _classify(stderr: str, what: str) -> OpsError:
    text = " ".join(stderr.split())[-300:]
    lowered = text.lower()
    if any(s in lowered for s in ("is not running", "no such container", "connection to server",
                                  "could not connect", "the database system is",
                                  "cannot connect to the docker daemon")):
        return DbUnavailable(f"{what}: database unavailable: {text}")
    return OpsError(f"{what} failed: {text or 'no error output'}")


class SnapshotSession:
    """A psql session holding a REPEATABLE READ transaction whose snapshot is exported.

    pg_dump --snapshot reads exactly that snapshot, and the row counts are taken in the
    same transaction, so a restore can be compared with them exactly even under writes.
    The transaction must stay open until pg_dump has finished.
    """

    def __init__(self, target: Target, timeout: float = 60):
        self.target, self.timeout = target, timeout
        self.proc: subprocess.Popen | None = None
        self.snapshot = self.server_version = ""
        self.counts: dict[str, int] = {}

    def __enter__(self) -> SnapshotSession:
        t = self.target
        self.errfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(exec_argv(t.container, pg.psql(t.user, t.db), stdin=True),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errfile)
        self.proc.stdin.write(pg.snapshot_session_script().encode())
        self.proc.stdin.flush()
        out = self._read_until_ready()
        tagged = pg.parse_tagged(out)
        if not tagged.get("READY") or "SNAPSHOT" not in tagged:
            err = self._stderr()
            self.close(commit=False)
            raise _classify(err, f"snapshot session on {t.label()}")
        self.snapshot, self.server_version = tagged["SNAPSHOT"], tagged.get("VERSION", "")
        self.counts = tagged["COUNT"]
        return self

    def _read_until_ready(self) -> str:
        buf, deadline = b"", time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b"READY\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break  # psql exited (error); stderr says why
            buf += chunk
        return buf.decode(errors="replace")

    def _stderr(self) -> str:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errfile.seek(0)
        return self.errfile.read().decode(errors="replace")

    def close(self, commit: bool = True) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"COMMIT;\n" if commit else b"ROLLBACK;\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.errfile.close()
        self.proc = None

    def __exit__(self, *exc) -> None:
        self.close(commit=exc[0] is None)


def stream_to(argv: list[str], fh, what: str) -> tuple[str, int]:
    """Run argv, copying its stdout into fh in 1 MiB chunks; returns (sha256, size).

    Raises unless the command exits 0 and wrote something.
    """
    h, size = hashlib.sha256(), 0
    # stderr to a file, not a pipe: a chatty tool can never block on a full stderr pipe.
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errfile)
        try:
            while chunk := proc.stdout.read(CHUNK):
                fh.write(chunk)
                h.update(chunk)
                size += len(chunk)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")
    if rc != 0:
        raise _classify(err, f"{what} (exit {rc})")
    if size == 0:
        raise OpsError(f"{what} produced no output")
    return h.hexdigest(), size


def feed_from(argv: list[str], path, what: str, timeout: float | None = None) -> str:
    """Run argv with the file as its stdin (streamed by the OS); returns stderr.

    Raises unless it exits 0.
    """
    with open(path, "rb") as fh:
        try:
            proc = subprocess.run(argv, stdin=fh, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise OpsError(f"{what} timed out") from exc
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise _classify(err, f"{what} (exit {proc.returncode})")
    return err


__all__ = ["Target", "SnapshotSession", "stream_to", "feed_from", "run_sql", "exec_argv",
           "DbUnavailable", "display"]
