"""Verdicts on continuous archiving (pure), from what `inv health` reads inside the
containers: a database's archiver (pg_stat_archiver, the WAL waiting in pg_wal, the
free space of its volume) and the repository's base backups (pgbackrest info)."""

from __future__ import annotations

from datetime import UTC, datetime

from .pgbackrest import parse_info

LAG_WARN, LAG_FAIL = 15, 60  # seconds the oldest segment waiting may wait
WAL_WARN, WAL_FAIL = 0.25, 0.5  # pg_wal's share of the space left on the volume
BASE_WARN_H = 36  # the newest base backup's age (a daily schedule, with slack)


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def archiver_verdict(code: int, out: str) -> tuple[bool, bool, str]:
    """(ok, warning, detail) from the archiving probe's two lines: `mode archived_age
    failed_count failed_age waiting waiting_age wal_bytes` (ages in seconds, -1: never)
    and the bytes free on the data volume."""
    lines = out.strip().splitlines()
    try:
        mode, archived, failed, failed_age, waiting, waiting_age, wal = lines[0].split()
        archived, failed, failed_age = int(archived), int(failed), int(failed_age)
        waiting, waiting_age, wal = int(waiting), int(waiting_age), int(wal)
        free = int(lines[1]) if len(lines) > 1 else None
    except (ValueError, IndexError):
        return False, False, f"exit {code}: {out.strip()[-200:] or 'no output'}"
    if mode not in ("on", "always"):
        return False, False, f"archive_mode {mode}: WAL is not archived"
    parts = [f"last archived {archived}s ago" if archived >= 0 else "nothing archived yet",
             f"{waiting} waiting" + (f" ({waiting_age}s)" if waiting else ""),
             f"pg_wal {size(wal)}"]
    if free is not None:
        parts.append(f"{size(free)} free")
    detail = ", ".join(parts)
    if failed_age >= 0 and (archived < 0 or failed_age < archived):
        return False, False, f"archive-push failing ({failed} failures, the last {failed_age}s ago): {detail}"
    if free is not None and wal > WAL_FAIL * free:
        return False, False, f"pg_wal is filling the volume: {detail}"
    if waiting and waiting_age > LAG_FAIL:
        return False, False, f"archiving lags {waiting_age}s: {detail}"
    warn = bool((waiting and waiting_age > LAG_WARN) or (free is not None and wal > WAL_WARN * free))
    return True, warn, detail


def base_backups_verdict(code: int, out: str, now: datetime | None = None) -> tuple[bool, bool, str]:
    """(ok, warning, detail) from `pgbackrest info --output=json` of every stanza: a
    stanza in error fails; one with no base backup yet, or only an old one, warns."""
    import json

    now = now or datetime.now(UTC)
    if code != 0:
        return False, False, f"pgbackrest info: exit {code}: {out.strip()[-200:]}"
    try:
        names = [s["name"] for s in json.loads(out)]
    except (ValueError, TypeError, KeyError):
        return False, False, f"pgbackrest info: not JSON ({out.strip()[:80]!r})"
    if not names:
        return True, True, "no stanza yet (inv up creates them)"
    bad, warn, parts = [], [], []
    for name in sorted(names):
        s = parse_info(out, name)
        newest = s.newest
        if newest is None:
            warn.append(f"{name}: no base backup yet")
            continue
        age_h = (now - newest.stopped).total_seconds() / 3600
        parts.append(f"{name} {newest.kind} {age_h:.1f}h ago")
        if not s.ok and s.status != "ok":
            bad.append(f"{name}: {s.status}")
        elif age_h > BASE_WARN_H:
            warn.append(f"{name}: newest base backup {age_h:.0f}h old")
    detail = "; ".join(bad + warn + parts)
    return not bad, bool(warn), detail
