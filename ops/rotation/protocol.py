"""The steps of a rotation, the same on Compose and Swarm (`Place` says how each is done
there), and how a failure is undone.

1. the current value must log in (else nothing is done: the stack is already broken);
2. a journal (0600, beside .env's own secrets) keeps both values before the server is
   touched: a rotation that dies half-way is finished by running it again, never lost;
3. the server takes the new password, and a fresh login proves it;
4. the env file the value came from gets the new one (atomic, mode kept);
5. every client moves to it (Place.move_clients: no request may fail);
6. a server that held both (Redis) drops the old one; the old value must no longer log in
   where the server allows only one (Postgres, RabbitMQ), which step 3 already did;
7. the journal goes.
A failure in 3-5 puts the old value back on the server and in the file, and the clients
back on it, then says "nothing changed"; if that undo fails too, the journal stays and
the message says how to finish."""

from __future__ import annotations

import fcntl
import json
import secrets
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .. import envfile
from ..errors import OpsError
from ..files import write_atomic
from . import servers
from .model import Rotation


class Place(Protocol):
    where: str  # "the local stack", "sandbox"

    def exec(self, script: servers.Script, check: bool = True) -> bool:
        """Run in the server's container; False (check=False) or OpsError on failure."""

    def move_clients(self, rotation: Rotation, value: str, out) -> list[str]:
        """Every client onto `value`, without a failed request; what was moved. Raises
        PastSwitch when it failed after users were moved (then only forward is safe)."""

    def move_back(self, rotation: Rotation, value: str, out) -> None:
        """After move_clients failed before users were moved: every client on `value`."""


class PastSwitch(OpsError):
    """The clients users reach are on the new value; what failed came after."""


@dataclass
class Journal:
    path: Path

    def read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            raise OpsError(f"{self.path} is not a rotation journal: look at it, then remove it") from None
        return data if isinstance(data, dict) and {"old", "new"} <= set(data) else None

    def write(self, data: dict) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data), mode=0o600)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def journal_for(root: Path, env: str, key: str) -> Journal:
    return Journal(root / ".cache" / "rotation" / f"{env}-{key}.json")


def env_file(sources: dict[str, str], variable: str, root: Path, env: str) -> Path:
    """The file the variable's value comes from, which the new value must go to (the
    next deploy reads it there); refused when it comes from anywhere else."""
    source = sources.get(variable)
    if source in (".env", f".env.{env}"):
        return root / source
    if source is None:
        raise OpsError(f"{variable} is not set (.env or .env.{env})")
    where = "the process environment" if source == "environment" else source
    home = ".env" if env == "local" else f".env.{env} (or .env)"
    raise OpsError(f"{variable} comes from {where}: a rotated value could not be kept there; "
                   f"move it to {home} first")


@contextmanager
def local_lock(root: Path):
    """One rotation at a time on this machine's stack (two would take turns undoing each
    other's server change); refused, not waited for."""
    d = root / ".cache" / "rotation"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(d / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OpsError("another secret rotation is running on this stack: wait for it") from None
        yield


def new_value() -> str:
    return secrets.token_urlsafe(32)


def rotate(place: Place, rotation: Rotation, current: str, file: Path, journal: Journal,
           out=sys.stderr) -> dict:
    """Run the steps; the record of what was done (values never in it)."""
    server, var = rotation.server, rotation.variable
    started = time.monotonic()
    pending = journal.read()
    if pending:
        old, new = pending["old"], pending["new"]
        print(f"finishing the rotation of {rotation.key} started {pending.get('since', '?')} "
              f"(its journal: {journal.path})", file=out)
    else:
        old, new = current, new_value()
        try:
            place.exec(servers.login(server, old))
        except OpsError as exc:
            raise OpsError(f"{var} (the current value in {file.name}) does not log in to "
                           f"{server.service} on {place.where} ({exc}): nothing was changed; "
                           "fix that first") from None
        journal.write({"old": old, "new": new, "key": rotation.key,
                       "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    moved: list[str] = []
    try:
        place.exec(servers.set_password(server, old, new))
        place.exec(servers.login(server, new))
        envfile.update(file, {var: new})
        moved = place.move_clients(rotation, new, out)
    except PastSwitch as exc:
        raise OpsError(f"{exc}; the clients users reach already use the new value: run "
                       f"`inv secrets.rotate {rotation.key}` again to finish (journal "
                       f"{journal.path})") from None
    except BaseException as exc:
        _undo(place, rotation, old, new, file, journal, exc, out)
        raise
    drop = servers.drop_password(server, keep=new, drop=old)
    if drop is not None:
        place.exec(drop)
    if place.exec(servers.login(server, old), check=False):
        raise OpsError(f"{server.service} still accepts the old password of {rotation.key}: "
                       f"the rotation is not finished; run it again (journal {journal.path})")
    journal.remove()
    return {"secret": rotation.key, "server": server.service, "clients": moved,
            "seconds": round(time.monotonic() - started, 1)}


def _undo(place: Place, rotation: Rotation, old: str, new: str, file: Path, journal: Journal,
          exc: BaseException, out) -> None:
    """Put the old value back everywhere; the journal goes only when that worked."""
    what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc}"
    print(f"rotation of {rotation.key} {what}; putting the old value back ...", file=out)
    try:
        envfile.update(file, {rotation.variable: old})
        place.exec(servers.restore_password(rotation.server, old, new))
        place.move_back(rotation, old, out)
        if not place.exec(servers.login(rotation.server, old), check=False):
            raise OpsError("the old password does not log in after the undo")
    except BaseException as undo_exc:  # noqa: BLE001 - said, and the journal kept
        print(f"error: could not put the old value back ({undo_exc}); both values are in "
              f"{journal.path} (0600): run `inv secrets.rotate {rotation.key}` again to finish",
              file=out)
        return
    journal.remove()
    print(f"nothing changed: {rotation.key} is back on its old value", file=out)


