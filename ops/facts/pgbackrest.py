"""What pgBackRest's `info --output=json` says of one stanza (pure): its base backups
and the window a point-in-time restore can reach, and the checks a target time must
pass before anything is restored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class BaseBackup:
    label: str
    kind: str  # full | diff | incr
    started: datetime
    stopped: datetime  # the earliest time a restore from it can stop at
    size: int  # the database's size at the backup
    repo_size: int  # what it takes in the repository (compressed, deduplicated)
    wal_start: str
    wal_stop: str


@dataclass(frozen=True)
class Stanza:
    name: str
    status: str  # "ok", or pgBackRest's message ("missing stanza path", "no valid backups")
    backups: tuple[BaseBackup, ...]
    wal_min: str | None
    wal_max: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def newest(self) -> BaseBackup | None:
        return self.backups[-1] if self.backups else None

    @property
    def earliest(self) -> datetime | None:
        """The oldest time a restore can reach: the end of the oldest base backup."""
        return self.backups[0].stopped if self.backups else None


def _time(epoch) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def parse_info(text: str, stanza: str) -> Stanza:
    """The stanza's entry of `pgbackrest info --output=json` (a list of stanzas)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"pgbackrest info: not JSON ({text.strip()[:80]!r})") from None
    entry = next((s for s in data if isinstance(s, dict) and s.get("name") == stanza), None)
    if entry is None:
        return Stanza(stanza, "missing stanza", (), None, None)
    backups = []
    for b in entry.get("backup") or []:
        if b.get("error"):
            continue  # a backup pgBackRest found damaged is no starting point
        ts, archive, info = b.get("timestamp") or {}, b.get("archive") or {}, b.get("info") or {}
        backups.append(BaseBackup(
            label=str(b.get("label")), kind=str(b.get("type")), started=_time(ts.get("start", 0)),
            stopped=_time(ts.get("stop", 0)), size=int(info.get("size") or 0),
            repo_size=int((info.get("repository") or {}).get("delta") or 0),
            wal_start=str(archive.get("start") or ""), wal_stop=str(archive.get("stop") or "")))
    backups.sort(key=lambda b: b.stopped)
    archives = [a for a in entry.get("archive") or [] if a.get("min")]
    status = (entry.get("status") or {})
    message = "ok" if status.get("code") == 0 else str(status.get("message") or "unknown")
    return Stanza(stanza, message, tuple(backups),
                  min((a["min"] for a in archives), default=None),
                  max((a["max"] for a in archives), default=None))


def parse_target_time(text: str) -> datetime:
    """An RFC 3339 time with its offset (`2026-12-07T14:03:00Z`, `...+01:00`), in UTC.
    A time without an offset is refused: it would be read in the server's zone."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--to-time {text!r}: not an RFC 3339 time (e.g. 2026-12-07T14:03:00Z)") from None
    if when.tzinfo is None:
        raise ValueError(f"--to-time {text!r}: give its offset (Z or +HH:MM), or it is ambiguous")
    return when.astimezone(UTC)


def window_problem(when: datetime, earliest: datetime | None, latest: datetime | None,
                   now: datetime) -> str | None:
    """Why `when` cannot be restored to (None when it can): before the oldest base
    backup, in the future, or past the newest archived WAL. The message names the
    window."""
    span = f"restorable from {iso(earliest)} to {iso(latest)}"
    if earliest is None:
        return "no base backup yet (inv db.backup takes one)"
    if when > now:
        return f"{iso(when)} is in the future ({span})"
    if when < earliest:
        return f"{iso(when)} is before the oldest base backup ({span})"
    if latest is not None and when > latest:
        return f"{iso(when)} is past the newest archived WAL ({span})"
    return None


def iso(t: datetime | None) -> str:
    if t is None:
        return "none"
    return t.isoformat(timespec="milliseconds" if t.microsecond else "seconds").replace("+00:00", "Z")


def target_time(t: datetime) -> str:
    """A time as pgBackRest's --target reads it (UTC, explicit offset), to the
    millisecond it takes (a fraction dropped would stop the recovery early)."""
    t = t.astimezone(UTC)
    ms = f".{t.microsecond // 1000:03d}" if t.microsecond else ""
    return t.strftime("%Y-%m-%d %H:%M:%S") + ms + "+00"


def verify_problem(text: str) -> str | None:
    """`pgbackrest verify --output=text --log-level-console=info`: None when every file
    read back matched its checksum, else its report in one line, naming the first
    damaged file (2.45 exits 0 either way: it prints `status: error`, and per archive
    or backup the files checked and valid, and logs each invalid file at INFO)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if "status: error" not in lines:
        return None
    report = [ln for ln in lines if ln.startswith(("archiveId:", "backup:", "other:", "checksum invalid:",
                                                  "missing:", "size invalid:"))]
    first = next((m.group(1) for ln in lines if (m := re.search(r"INFO: invalid result (\S+?):", ln))), None)
    said = "; ".join(dict.fromkeys(report)) or "status: error"  # logged, then printed: once
    return (f"{said}; first: {first}" if first else said)[:400]
