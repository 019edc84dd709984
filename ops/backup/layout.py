"""Where backups live: <dest>/<env>/<service>/<db>/<UTC timestamp>.dump[.zst], with a
`.sha256` sidecar and a `.json` manifest beside each. A backup exists only when its
manifest does: the manifest is renamed into place last."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import OpsError

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME = re.compile(r"^(\d{8}T\d{6}Z)\.dump(\.zst)?$")
PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def safe_part(kind: str, value: str) -> str:
    """A path component from user or engine input: no separators, no dot-dot tricks."""
    if not isinstance(value, str) or not PART.match(value) or value in (".", ".."):
        raise OpsError(f"invalid {kind} name {value!r}: letters, digits, '.', '_', '-' only")
    return value


@dataclass(frozen=True)
class Backup:
    path: Path  # the .dump file

    @property
    def taken_at(self) -> datetime:
        return parse_stamp(NAME.match(self.path.name).group(1))

    @property
    def compressed(self) -> bool:
        """zstd over an uncompressed custom-format dump (pg_dump -Z0 | zstd)."""
        return self.path.name.endswith(".zst")

    @property
    def manifest_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    @property
    def checksum_path(self) -> Path:
        return self.path.with_name(self.path.name + ".sha256")

    @property
    def db(self) -> str:
        return self.path.parent.name

    @property
    def service(self) -> str:
        return self.path.parent.parent.name


def db_dir(dest: Path, env: str, service: str, db: str) -> Path:
    return dest / safe_part("environment", env) / safe_part("service", service) / safe_part("database", db)


def service_dirs(env_root: Path) -> list[Path]:
    """The services' directories of an environment's backups (not `.pgbackrest`, the
    repository's mirror, nor any other dot-directory)."""
    if not env_root.is_dir():
        return []
    return sorted(p for p in env_root.iterdir() if p.is_dir() and not p.name.startswith("."))


def new_backup(directory: Path, when: datetime, zstd: bool = False) -> Backup:
    return Backup(directory / f"{stamp(when)}.dump{'.zst' if zstd else ''}")


def backups_in(directory: Path) -> list[Backup]:
    """Complete backups (dump + manifest), oldest first."""
    if not directory.is_dir():
        return []
    found = [Backup(p) for p in directory.iterdir() if NAME.match(p.name)]
    return sorted((b for b in found if b.manifest_path.exists()),
                  key=lambda b: (b.taken_at, b.path.name))


def leftovers(directory: Path) -> list[Path]:
    """What a killed run leaves: *.partial files and dumps whose manifest never landed."""
    if not directory.is_dir():
        return []
    out = [p for p in directory.iterdir() if p.name.endswith(".partial")]
    for p in directory.iterdir():
        if NAME.match(p.name) and not Backup(p).manifest_path.exists():
            out += [p, Backup(p).checksum_path]
    return [p for p in out if p.exists()]


def resolve_file(dest: Path, given: str) -> Backup:
    """A backup named on the command line: must be a .dump under the destination."""
    path = Path(given).expanduser()
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    root = dest.resolve()
    if root not in path.parents:
        raise OpsError(f"{given}: not under the backup directory {root}")
    if not NAME.match(path.name):
        raise OpsError(f"{given}: not a backup file (expected <UTC timestamp>.dump[.zst])")
    if not path.exists():
        raise OpsError(f"{given}: no such backup")
    return Backup(path)
