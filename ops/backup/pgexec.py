"""Running the Postgres tools inside a database container with `docker exec -i`, on
this machine's engine or on a Swarm node over SSH (`ops.containers`).

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
from ..containers import Container, Stage
from ..errors import OpsError

CHUNK = 1 << 20


class DbUnavailable(OpsError):
    """The database could not be reached (container down, server not accepting)."""


@dataclass(frozen=True)
class Database:
    service: str
    container: Container
    image: str
    user: str
    db: str

    def label(self) -> str:
        return f"{self.service}/{self.db}"


def run_sql(container: Container, user: str, db: str, sql: str, timeout: float = 60) -> str:
    try:
        proc = container.run(pg.psql(user, db), input=sql, timeout=timeout)
    except OpsError as exc:  # the runner's timeout
        raise DbUnavailable(f"{db}: query timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise _lost(container.machine, proc.returncode, f"psql on {db}") \
            or _classify(proc.stderr, f"psql on {db}")
    return proc.stdout


def retrying(attempts: int, max_wait: float = 10.0) -> Retrying:
    """Retries transient unavailability only (container restarting, server starting up)."""
    return Retrying(stop=stop_after_attempt(max(1, attempts)),
                    wait=wait_exponential(multiplier=1, min=1, max=max_wait),
                    retry=retry_if_exception_type(DbUnavailable), reraise=True)


def retry_sql(container: Container, user: str, db: str, sql: str, attempts: int = 3) -> str:
    for attempt in retrying(attempts):
        with attempt:
            return run_sql(container, user, db, sql)
    raise AssertionError("unreachable")


def _lost(machine, rc: int, what: str) -> OpsError | None:
    """A remote command whose channel closed without an exit status (-1): the SSH
    connection dropped, or a local write failed; nothing it produced is whole."""
    if machine.local or rc != -1:
        return None
    return OpsError(f"{what}: the SSH connection to {machine.name} closed before it ended")


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

    def __init__(self, target: Database, timeout: float = 60, counts_timeout: float = 6 * 3600):
        self.target, self.timeout, self.counts_timeout = target, timeout, counts_timeout
        self.proc: subprocess.Popen | None = None
        self.snapshot = self.server_version = ""
        self.counts: dict[str, int] = {}

    def __enter__(self) -> SnapshotSession:
        t = self.target
        self.errfile = tempfile.TemporaryFile()
        self.proc = t.container.exec(pg.psql(t.user, t.db), stdin=True).popen(
            subprocess.PIPE, subprocess.PIPE, self.errfile)
        self.proc.stdin.write(pg.snapshot_session_script().encode())
        self.proc.stdin.flush()
        tagged = pg.parse_tagged(self._read_until(b"READY\n", self.timeout))
        if not tagged.get("READY") or "SNAPSHOT" not in tagged:
            err = self._stderr()
            self.close(commit=False)
            raise _classify(err, f"snapshot session on {t.label()}")
        self.snapshot, self.server_version = tagged["SNAPSHOT"], tagged.get("VERSION", "")
        return self

    def start_counts(self) -> None:
        """Row counts in the snapshot's transaction, running while pg_dump runs."""
        self.proc.stdin.write(pg.snapshot_counts_script().encode())
        self.proc.stdin.flush()

    def finish_counts(self) -> dict[str, int]:
        tagged = pg.parse_tagged(self._read_until(b"COUNTED\n", self.counts_timeout))
        if not tagged.get("COUNTED"):
            raise _classify(self._stderr(), f"row counts of {self.target.label()}")
        self.counts = tagged["COUNT"]
        return self.counts

    def _read_until(self, marker: bytes, timeout: float) -> str:
        buf, deadline = b"", time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while marker not in buf:
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


def zstd_compress(level: int) -> list[str]:
    return ["zstd", "-q", "-T0", f"-{int(level)}", "-c"]


def zstd_decompress(path) -> list[str]:
    return ["zstd", "-q", "-d", "-c", str(path)]


def _check(procs, errfiles, what: str) -> None:
    """pipefail: every stage must exit 0; report the first that did not."""
    for (stage, proc), errfile in zip(procs, errfiles, strict=True):
        rc = proc.wait()
        if rc != 0:
            errfile.seek(0)
            where = f" on {stage.machine.name}" if not stage.machine.local else ""
            raise _lost(stage.machine, rc, f"{what}: {stage.program}") or _classify(
                errfile.read().decode(errors="replace"), f"{what}: {stage.program}{where} (exit {rc})")


def pipeline(stages: list[Stage | list[str]], stdin, stdout, what: str) -> None:
    """Run stages as a shell pipeline would (stdin -> a | b | ... -> stdout), with
    pipefail semantics: raises unless every stage exits 0. A stage runs here (an argv)
    or on another machine (a Stage). stderr goes to files, never pipes, so no stage can
    block on it; on any error or interrupt every stage is killed.
    """
    stages = [s if isinstance(s, Stage) else Stage(s) for s in stages]
    errfiles = [tempfile.TemporaryFile() for _ in stages]
    procs = []
    try:
        upstream = stdin
        for i, (stage, errfile) in enumerate(zip(stages, errfiles, strict=True)):
            last = i == len(stages) - 1
            proc = stage.popen(upstream, stdout if last else subprocess.PIPE, errfile)
            if i > 0:
                upstream.close()  # only the next stage holds the pipe now (SIGPIPE works)
            upstream = proc.stdout
            procs.append((stage, proc))
        _check(procs, errfiles, what)
    except BaseException:
        for _, proc in procs:
            proc.kill()
            proc.wait()
        raise
    finally:
        for f in errfiles:
            f.close()


def stream_to(argv: Stage | list[str], fh, what: str, compress: list[str] | None = None) -> tuple[str, int]:
    """Run argv (optionally piped through a compressor) with the last stage writing
    straight into fh (a file opened by path): the data never passes through this
    process. Then fsync and hash what was written (re-read from fh.name, page-cache
    hot); returns (sha256, size). An empty output is an error.
    """
    pipeline([argv, *([compress] if compress else [])], subprocess.DEVNULL, fh, what)
    fh.flush()
    os.fsync(fh.fileno())
    h, size = hashlib.sha256(), 0
    with open(fh.name, "rb") as back:
        while chunk := back.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    if size == 0:
        raise OpsError(f"{what} produced no output")
    return h.hexdigest(), size


def feed_from(argv: Stage | list[str], path, what: str, decompress: bool = False) -> None:
    """Run argv with the backup file as its stdin (through `zstd -d` first when asked)."""
    if decompress:
        pipeline([zstd_decompress(path), argv], subprocess.DEVNULL, subprocess.DEVNULL, what)
        return
    with open(path, "rb") as fh:
        pipeline([argv], fh, subprocess.DEVNULL, what)

