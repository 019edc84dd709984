"""The manifest (JSON) and sha256 sidecar (sha256sum format) of one backup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import OpsError
from ..files import write_atomic

FORMAT = 1
CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def checksum_line(sha: str, filename: str) -> str:
    return f"{sha}  {filename}\n"


def parse_checksum_line(text: str) -> tuple[str, str]:
    parts = text.strip().split()
    if len(parts) != 2 or len(parts[0]) != 64:
        raise OpsError(f"malformed checksum file: {text.strip()[:80]!r}")
    return parts[0], parts[1].lstrip("*")


def read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OpsError(f"{path}: manifest missing") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OpsError(f"{path}: manifest unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OpsError(f"{path}: not a backup manifest (format {FORMAT})")
    return data


def write(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)


def record_verification(path: Path, entry: dict) -> dict:
    data = read(path)
    data.setdefault("verifications", []).append(entry)
    write(path, data)
    return data


def last_verification(data: dict, level: str | None = None) -> dict | None:
    for entry in reversed(data.get("verifications") or []):
        if level is None or entry.get("level") == level:
            return entry
    return None


LEVELS = ("checksum", "read", "restore")


def verified_level(data: dict) -> str | None:
    """Highest level whose latest run passed, unless a later run of any level failed."""
    entries = data.get("verifications") or []
    if entries and not entries[-1].get("ok"):
        return None
    best = None
    for entry in entries:
        if entry.get("ok") and (best is None or LEVELS.index(entry["level"]) > LEVELS.index(best)):
            best = entry["level"]
    return best


def failed(data: dict) -> bool:
    return any(not e.get("ok") for e in data.get("verifications") or [])
