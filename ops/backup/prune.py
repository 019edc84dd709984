"""Retention on disk: which backups of one database go, and removing them safely."""

from __future__ import annotations

from pathlib import Path

from . import layout, manifest, retention
from .db_lock import DbLock


def plan(directory: Path, policy: retention.Policy) -> tuple[list[layout.Backup], list[layout.Backup]]:
    """(to delete by policy, to delete because verification failed)."""
    good, bad = [], []
    for b in layout.backups_in(directory):
        data = manifest.read(b.manifest_path)
        (bad if manifest.failed(data) and not manifest.verified_level(data) else good).append((b, data))
    items = [retention.Item(b.path.name, b.taken_at, manifest.verified_level(d) is not None)
             for b, d in good]
    doomed = set(retention.to_delete(items, policy))
    return [b for b, _ in good if b.path.name in doomed], [b for b, _ in bad]


def remove(b: layout.Backup) -> None:
    # Manifest first: from that moment the backup no longer counts, whatever happens next.
    for p in (b.manifest_path, b.checksum_path, b.path):
        p.unlink(missing_ok=True)


def prune(directory: Path, policy: retention.Policy,
          dry_run: bool = False) -> list[tuple[layout.Backup, str]]:
    with DbLock(directory, f"prune of {directory.parent.name}/{directory.name}"):
        by_policy, failed = plan(directory, policy)
        out = [(b, "retention") for b in by_policy] + [(b, "failed verification") for b in failed]
        if not dry_run:
            for b, _ in out:
                remove(b)
        return sorted(out, key=lambda x: x[0].path.name)
