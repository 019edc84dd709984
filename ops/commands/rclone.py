"""Commands for rclone (`line.Line`s, run without a shell; off-site copies: S3, GCS,
Azure, B2, SFTP, ... through one tool) and parsers of its output. Pure.

A remote is always a *named* rclone remote, `NAME:path`: its type, endpoint and
credentials come from rclone's own config file or from `RCLONE_CONFIG_<NAME>_*`
variables (.env.<env>), never from the command line, so a connection string with
inline options (`:s3,access_key_id=...:bucket`) is refused."""

from __future__ import annotations

import json
import re

from ..errors import OpsError
from .line import Line, cmd

REMOTE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,63}):(?P<path>[^\x00-\x1f]*)$")
# Fail fast and say why: no 10 low-level retries of a refused login per file.
COMMON = ["--low-level-retries=2", "--retries=1", "--stats=0", "--log-level=ERROR"]


def check_remote(remote: str) -> str:
    """`NAME:path` with a named remote; the path never climbs out with `..`."""
    m = REMOTE.match(remote or "")
    if not m or remote.startswith("-"):
        # Not echoed: an inline connection string may carry a password.
        raise OpsError("invalid off-site remote in backup.offsite.remotes: give a named rclone "
                       "remote, NAME:path (its settings in rclone.conf or RCLONE_CONFIG_<NAME>_* "
                       "variables, never inline)")
    if ".." in m.group("path").split("/"):
        raise OpsError(f"invalid off-site remote {remote!r}: '..' in its path")
    return remote


def remote_name(remote: str) -> str:
    return check_remote(remote).split(":", 1)[0]


def join(remote: str, *parts: str) -> str:
    """remote + path parts: `offsite:backups` + `sandbox/app-db/app` -> `offsite:backups/...`."""
    check_remote(remote)
    base = remote.rstrip("/")
    tail = "/".join(p.strip("/") for p in parts if p)
    if base.endswith(":"):
        return base + tail
    return f"{base}/{tail}" if tail else base


# Progress for a terminal: a JSON log line with the transfer's stats every second.
STATS = ["--low-level-retries=2", "--retries=1", "--stats=1s", "--stats-log-level=NOTICE",
         "--log-level=NOTICE", "--use-json-log"]


def copyto(src: str, dst: str, stats: bool = False) -> Line:
    """One file to one path (either side local or remote); no server-side tricks.
    `stats`: its progress on stderr (parse_stats), errors as JSON log lines too."""
    return cmd("rclone", "copyto", *(STATS if stats else COMMON), "--", src, dst)


def parse_stats(line: str) -> int | None:
    """Bytes transferred so far, from one JSON log line of `copyto(stats=True)`; None
    for any other line."""
    if '"stats"' not in line:
        return None
    try:
        found = json.loads(line).get("stats", {}).get("bytes")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, int) else None


def hashsum(kind: str, path: str, download: bool = False) -> Line:
    """The remote's own checksum of `path` (md5, sha1: what the backend keeps), or, with
    `download`, the bytes read back and hashed here (any backend, any hash)."""
    if kind not in ("md5", "sha1", "sha256"):
        raise ValueError(f"unsupported hash {kind!r}")
    return cmd("rclone", "hashsum", *COMMON, kind, *(["--download"] if download else []), "--", path)


def lsjson(path: str) -> Line:
    return cmd("rclone", "lsjson", *COMMON, "--recursive", "--files-only", "--", path)


def copy_tree(src: str, dst: str, exclude=()) -> Line:
    """New and changed files of a directory tree; nothing deleted."""
    return cmd("rclone", "copy", *COMMON, *(f"--exclude={e}" for e in exclude), "--", src, dst)


def sync_tree(src: str, dst: str) -> Line:
    """dst made equal to src: copies first, deletions after them (rclone's default)."""
    return cmd("rclone", "sync", *COMMON, "--", src, dst)


def check_tree(src: str, dst: str, download: bool = False) -> Line:
    """Sizes and hashes of both trees compared (`download`: the bytes read back);
    NOTICE level, so that hashes_unchecked can see a check that compared sizes only."""
    return cmd("rclone", "check", "--low-level-retries=2", "--retries=1", "--log-level=NOTICE",
               *(["--download"] if download else []), "--", src, dst)


def hashes_unchecked(stderr: str) -> bool:
    """rclone check found no hash both sides keep (it compared sizes only)."""
    text = stderr or ""
    return "No common hash found" in text or "hashes could not be checked" in text


def check_error(stderr: str) -> str:
    """What `rclone check` found: its count, and the first file that differs."""
    lines = [ln for ln in (stderr or "").splitlines() if ln.strip()]
    first = next((re.sub(r"^.*? ERROR : ", "", ln) for ln in lines if " ERROR : " in ln), None)
    count = next((m.group(0) for ln in lines if (m := re.search(r"\d+ differences found", ln))), None)
    if count and first:
        return f"{count} ({first[:200]})"
    return count or error_line(stderr)


def deletefile(path: str) -> Line:
    return cmd("rclone", "deletefile", *COMMON, "--", path)


def parse_hashsum(text: str) -> dict[str, str]:
    """`<hex>  <name>` lines -> {name: hex}."""
    out = {}
    for line in (text or "").splitlines():
        digest, sep, name = line.strip().partition("  ")
        if sep and re.fullmatch(r"[0-9a-f]{32,128}", digest):
            out[name] = digest
    return out


def unsupported_hash(stderr: str) -> bool:
    return "hash type not supported" in (stderr or "") or "hash unsupported" in (stderr or "")


def parse_lsjson(text: str) -> list[dict]:
    """rclone lsjson output -> [{path, size, modified}] (files only)."""
    try:
        items = json.loads(text or "[]")
    except ValueError as exc:
        raise OpsError(f"rclone lsjson: unreadable output ({exc})") from exc
    if not isinstance(items, list):
        raise OpsError("rclone lsjson: unreadable output (not a list)")
    return [{"path": i.get("Path", ""), "size": i.get("Size", -1), "modified": i.get("ModTime", "")}
            for i in items if isinstance(i, dict) and not i.get("IsDir")]


def _message(line: str) -> str | None:
    """A log line's text: a JSON log line's msg (None for a stats line), else itself."""
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return line
        return None if "stats" in entry else str(entry.get("msg", line))
    return line


def error_line(stderr: str) -> str:
    """rclone's last error line, without its timestamp prefix (plain or JSON logs)."""
    lines = [m for ln in (stderr or "").splitlines() if ln.strip() and (m := _message(ln.strip()))]
    if not lines:
        return "no error output"
    last = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (ERROR|NOTICE|CRITICAL) : ", "", lines[-1])
    return " ".join(last.split())[:300]
