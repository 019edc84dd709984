"""The deploy lock: one file on the manager, created atomically, naming who holds it
(user, host, pid, time, tag). Released on success, failure, Ctrl-C and SIGTERM; a lock
whose holder is gone (same machine, dead pid) or that is older than its TTL is stale and
is taken over with a warning. `deploy.unlock` removes any lock."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
from datetime import UTC, datetime

from .. import owner
from ..commands import deploy_lock as lock_cmd
from ..errors import OpsError

DEFAULT_TTL = 2 * 3600


def record(tag: str | None) -> dict:
    return owner.record(tag=tag, token=secrets.token_hex(16))


def parse(text: str) -> dict | None:
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else {"raw": text[:200]}
    except json.JSONDecodeError:
        return {"raw": text[:200]}


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # exists but not ours, or unknowable: not provably dead
    return True


def stale_reason(holder: dict, now: datetime, ttl: float = DEFAULT_TTL,
                 here: str | None = None, alive=pid_alive) -> str | None:
    """Why a lock is stale, or None when it must be respected."""
    here = here or socket.gethostname()
    if holder.get("host") == here and holder.get("pid") and not alive(holder["pid"]):
        return f"its holder (pid {holder['pid']} on {here}) is no longer running"
    try:
        age = (now - datetime.fromisoformat(holder["since"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None
    if age > ttl:
        return f"it is {age / 3600:.1f} h old (ttl {ttl / 3600:.1f} h)"
    return None


def describe(holder: dict) -> str:
    if "raw" in holder:
        return f"unreadable lock ({holder['raw']!r})"
    return (f"{holder.get('user')}@{holder.get('host')} pid {holder.get('pid')} since "
            f"{holder.get('since')}" + (f" deploying {holder['tag']}" if holder.get("tag") else ""))


class Terminated(BaseException):
    """SIGTERM turned into an exception so that `finally` blocks (the release) run."""


class DeployLock:
    def __init__(self, manager, app: str, tag: str | None = None, ttl: float = DEFAULT_TTL,
                 out=sys.stderr, base: str = lock_cmd.BASE, on_stale=None):
        """`manager`: the runner of the host that keeps the lock (runtime.runner);
        `on_stale(holder, reason)`: called when a stale lock is taken over (the audit log
        records the action that never finished)."""
        self.manager, self.app, self.tag, self.ttl, self.out = manager, app, tag, ttl, out
        self.on_stale = on_stale
        self.base = base
        self.mine: dict | None = None
        self._previous_term = None

    def holder(self) -> dict | None:
        return parse(self.manager.run(lock_cmd.read(self.app, self.base), "read deploy lock").stdout)

    def acquire(self) -> dict:
        mine = record(self.tag)
        for _ in range(2):
            take = lock_cmd.acquire(self.app, json.dumps(mine), self.base)
            taken = self.manager.run(take, "deploy lock", check=False)
            if taken.returncode == 0:
                self.mine = mine
                return mine
            why = (taken.stderr or "").strip().splitlines()[-1:]  # e.g. the disk is full
            holder = self.holder()
            if holder is None:
                continue  # released between our attempt and the read: try once more
            reason = stale_reason(holder, datetime.now(UTC), self.ttl)
            if reason is None:
                raise OpsError(f"deploy of {self.app} is locked by {describe(holder)}; "
                               f"wait, or `inv deploy.unlock` if you know it is dead", code=75)
            print(f"warning: taking over a stale deploy lock ({describe(holder)}): {reason}",
                  file=self.out)
            if self.on_stale is not None:
                self.on_stale(holder, reason)
            if holder.get("token"):
                self.manager.run(lock_cmd.release_if(self.app, holder["token"], self.base), "stale lock")
            else:
                self.manager.run(lock_cmd.remove(self.app, self.base), "stale lock")
        raise OpsError(f"could not take the deploy lock of {self.app} on {self.manager.name}"
                       + (f": {why[0]}" if why else ""))

    def release(self) -> None:
        if self.mine:
            self.manager.run(lock_cmd.release_if(self.app, self.mine["token"], self.base),
                             "release deploy lock", check=False)
            self.mine = None

    def __enter__(self) -> DeployLock:
        self.acquire()
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._previous_term = signal.signal(signal.SIGTERM, self._on_term)
        return self

    def _on_term(self, signum, frame):
        raise Terminated()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.release()
        finally:
            if self._previous_term is not None:
                signal.signal(signal.SIGTERM, self._previous_term)
        if exc_type is Terminated:
            raise OpsError("terminated (SIGTERM): deploy lock released", code=143)
