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

    def __init__(self, target: Target, timeout: float = 60, counts_timeout: float = 6 * 3600):
        self.target, self.timeout, self.counts_timeout = target, timeout, counts_timeout
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
    for (argv, proc), errfile in zip(procs, errfiles, strict=True):
        rc = proc.wait()
        if rc != 0:
            errfile.seek(0)
            raise _classify(errfile.read().decode(errors="replace"),
                            f"{what}: {argv[0] if argv[0] != 'docker' else argv[3]} (exit {rc})")


def pipeline(stages: list[list[str]], stdin, stdout, what: str) -> None:
    """Run stages as a shell pipeline would (stdin -> a | b | ... -> stdout), with
    pipefail semantics: raises unless every stage exits 0. stderr goes to files, never
    pipes, so no stage can block on it; on any error or interrupt every stage is killed.
    """
    errfiles = [tempfile.TemporaryFile() for _ in stages]
    procs = []
    try:
        upstream = stdin
        for i, (stage, errfile) in enumerate(zip(stages, errfiles, strict=True)):
            last = i == len(stages) - 1
            proc = subprocess.Popen(stage, stdin=upstream, stderr=errfile,
                                    stdout=stdout if last else subprocess.PIPE)
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


def stream_to(argv: list[str], fh, what: str, compress: list[str] | None = None) -> tuple[str, int]:
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


def feed_from(argv: list[str], path, what: str, decompress: bool = False) -> None:
    """Run argv with the backup file as its stdin (through `zstd -d` first when asked)."""
    if decompress:
        pipeline([zstd_decompress(path), argv], subprocess.DEVNULL, subprocess.DEVNULL, what)
        return
    with open(path, "rb") as fh:
        pipeline([argv], fh, subprocess.DEVNULL, what)

