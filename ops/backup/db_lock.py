"""A non-blocking lock per database directory.

flock(2) on a lock file: the kernel releases it when the holder dies (even kill -9), so
a lock can never go stale and block cron forever. The file also records who holds it
(host, pid, user, start, command) so a refusal can say who is running.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

from .. import owner
from ..errors import OpsError

LOCK_NAME = ".lock"


class Busy(OpsError):
    pass


def owner_record() -> dict:
    return owner.record(command=" ".join(sys.argv[:4])[:200])


def describe(record: dict) -> str:
    return (f"pid {record.get('pid')} on {record.get('host')} (user {record.get('user')}, "
            f"since {record.get('since')})")


class DbLock:
    def __init__(self, directory: Path, what: str):
        self.path = directory / LOCK_NAME
        self.what = what
        self.fd: int | None = None

    def __enter__(self) -> DbLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except json.JSONDecodeError:
                holder = {}
            os.close(fd)
            raise Busy(f"{self.what} is locked by another run: {describe(holder)}; "
                       "it was left alone", code=75) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner_record()).encode(), 0)
        except OSError as exc:  # a full disk: said where, before anything is written
            os.close(fd)
            raise OpsError(f"{self.path}: {exc.strerror}") from None
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # released: no owner left to report
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
