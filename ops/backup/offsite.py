"""Off-site copies through rclone: after a backup is verified here, its dump, sidecar and
manifest go to every configured remote under `<remote>/<env>/<service>/<db>/`.

An upload counts only once proven: the remote's own checksum of the dump (md5 where
the backend keeps one, e.g. SFTP, S3) must equal the file's, or, where it keeps none,
the bytes are read back and their sha256 must equal the manifest's. Only then is the
manifest uploaded, last, with the copy recorded in it: a remote dump without its
manifest is debris of a failed upload, never a backup (the same rule as on disk).

Retention runs off-site too (its own GFS policy), and never deletes the newest
complete copy. rclone reads its remotes from rclone.conf or RCLONE_CONFIG_<NAME>_*
variables, which come from the environment's .env files: never from a command line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .. import progress
from ..commands import rclone
from ..errors import OpsError
from ..files import fsync_dir
from . import layout, manifest, retention

CHUNK = 1 << 20


@dataclass(frozen=True)
class Offsite:
    remotes: tuple[str, ...] = ()
    policy: retention.Policy = field(default_factory=lambda: retention.Policy(
        last=3, daily=7, weekly=5, monthly=12))
    verify: str = "hash"  # hash (the backend's checksum, else read back) | download (always)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # RCLONE_* variables

    @property
    def enabled(self) -> bool:
        return bool(self.remotes)


def offsite_config(raw, variables: Mapping[str, str]) -> Offsite:
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise OpsError("backup.offsite must be a mapping (remotes, keep, verify)")
    remotes = raw.get("remotes") or []
    if isinstance(remotes, str):  # one string (an environment variable): commas between
        remotes = [r.strip() for r in remotes.split(",") if r.strip()]
    if not isinstance(remotes, list):
        raise OpsError(f"backup.offsite.remotes: a list of NAME:path, not {remotes!r}")
    remotes = tuple(rclone.check_remote(str(r)) for r in remotes)
    if len(set(remotes)) != len(remotes):
        raise OpsError("backup.offsite.remotes: a remote is listed twice")
    verify = str(raw.get("verify", "hash"))
    if verify not in ("hash", "download"):
        raise OpsError(f"backup.offsite.verify must be hash or download, not {verify!r}")
    keep = raw.get("keep") or {}
    try:
        policy = retention.Policy(**{k: keep.get(k, d) for k, d in
                                     (("last", 3), ("daily", 7), ("weekly", 5), ("monthly", 12))})
    except (TypeError, ValueError) as exc:
        raise OpsError(f"backup.offsite.keep: {exc}") from exc
    env = {k: v for k, v in variables.items() if k.startswith("RCLONE_")}
    return Offsite(remotes, policy, verify, env)


# -- running rclone ---------------------------------------------------------------------

def _need_rclone() -> None:
    if shutil.which("rclone") is None:
        raise OpsError("off-site copies need rclone (apt-get install rclone)")


def run_rclone(o: Offsite, argv, what: str, check: bool = True, timeout: float = 6 * 3600):
    """rclone through this machine's runner; a failure is one line, rclone's error."""
    from ..runtime.runner import LOCAL

    _need_rclone()
    proc = LOCAL.run(argv, f"{what}: rclone", check=False, timeout=timeout,
                     env={**os.environ, **o.env})
    if check and proc.returncode != 0:
        raise OpsError(f"{what}: {rclone.error_line(proc.stderr)}")
    return proc


def _copy(o: Offsite, src: str, dst: str, what: str, size: int,
          timeout: float = 6 * 3600) -> None:
    """One file copied; its progress on a terminal (rclone's stats, read as they come),
    nothing drawn under --cron, --json or without a TTY."""
    if not progress.BOARD.shown:
        run_rclone(o, rclone.copyto(src, dst), what, timeout=timeout)
        return
    import tempfile
    import threading

    from ..runtime.runner import LOCAL

    _need_rclone()
    with progress.meter(f"{Path(src).name}: sent", size) as meter, tempfile.TemporaryFile() as out:
        proc = LOCAL.popen(rclone.copyto(src, dst, stats=True), subprocess.DEVNULL, out,
                           subprocess.PIPE, env={**os.environ, **o.env}, own_group=True)
        said: list[str] = []

        def read() -> None:
            for raw in proc.stderr:
                line = raw.decode(errors="replace").strip()
                done = rclone.parse_stats(line)
                if done is not None:
                    meter.set(done)
                else:
                    said.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            LOCAL.end(proc)
            raise OpsError(f"{what}: rclone timed out after {timeout:.0f}s") from exc
        except BaseException:
            LOCAL.end(proc)
            raise
        finally:
            reader.join(5)
            proc.stderr.close()
    if rc != 0:
        raise OpsError(f"{what}: {rclone.error_line(chr(10).join(said))}")


def md5_file(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - compared with the backend's own checksum, not security
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def remote_dir(remote: str, env: str, service: str, db: str) -> str:
    return rclone.join(remote, layout.safe_part("environment", env),
                       layout.safe_part("service", service), layout.safe_part("database", db))


def remote_hash_check(o: Offsite, path: str, name: str, md5: str, sha256: str) -> str:
    """Prove the remote copy: the backend's md5 of it, else its bytes read back. Returns
    how it was proven; raises when it differs."""
    if o.verify == "hash":
        proc = run_rclone(o, rclone.hashsum("md5", path), f"checksum of {path}", check=False)
        got = rclone.parse_hashsum(proc.stdout).get(name)
        if proc.returncode == 0 and got:
            if got != md5:
                raise OpsError(f"{path}: the remote's md5 {got} differs from the file's {md5}")
            return "md5 (remote)"
        if proc.returncode != 0 and not rclone.unsupported_hash(proc.stderr):
            raise OpsError(f"checksum of {path}: {rclone.error_line(proc.stderr)}")
    proc = run_rclone(o, rclone.hashsum("sha256", path, download=True), f"reading back {path}")
    got = rclone.parse_hashsum(proc.stdout).get(name)
    if got != sha256:
        raise OpsError(f"{path}: the copy read back has sha256 {got}, the manifest says {sha256}")
    return "sha256 (read back)"


def upload(o: Offsite, b: layout.Backup, env: str, remote: str) -> dict:
    """Dump and sidecar, proven, then the manifest with this copy recorded; the local
    manifest records it too. Raises on any failure (the local backup stays as it is)."""
    data = manifest.read(b.manifest_path)
    target = remote_dir(remote, env, b.service, b.db)
    dump = rclone.join(target, b.path.name)
    started = datetime.now(UTC)
    _copy(o, str(b.path), dump, f"upload of {b.path.name} to {remote}", b.path.stat().st_size)
    run_rclone(o, rclone.copyto(str(b.checksum_path), rclone.join(target, b.checksum_path.name)),
         f"upload of {b.checksum_path.name} to {remote}")
    how = remote_hash_check(o, dump, b.path.name, md5_file(b.path), data["sha256"])
    entry = {"remote": remote, "path": dump, "uploaded_at": started.isoformat(timespec="seconds"),
             "verified_at": datetime.now(UTC).isoformat(timespec="seconds"), "verified_by": how}
    record_copy(b.manifest_path, entry)
    run_rclone(o, rclone.copyto(str(b.manifest_path), rclone.join(target, b.manifest_path.name)),
         f"upload of {b.manifest_path.name} to {remote}")
    return entry


def record_copy(path: Path, entry: dict) -> dict:
    """The manifest's record of its copy on entry["remote"], replaced by `entry`."""
    data = manifest.read(path)
    copies = [c for c in data.get("offsite") or [] if c.get("remote") != entry["remote"]]
    data["offsite"] = [*copies, entry]
    manifest.write(path, data)
    return data


def record_check(path: Path, rb: RemoteBackup, level: str, ok: bool) -> None:
    """A verification of the remote copy, added to its record in the local manifest."""
    known = next((c for c in manifest.read(path).get("offsite") or [] if c.get("remote") == rb.remote),
                 {"remote": rb.remote, "path": rb.path})
    record_copy(path, {**known, "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
                       "checked_level": level, "checked_ok": ok})


# -- what is off-site -------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteBackup:
    remote: str
    env: str
    service: str
    db: str
    name: str  # <ts>.dump[.zst]
    size: int
    complete: bool  # dump, sidecar and manifest all there
    suffixes: tuple[str, ...] = ("",)  # of the files there: "", ".sha256", ".json"

    @property
    def taken_at(self) -> datetime:
        return layout.parse_stamp(layout.NAME.match(self.name).group(1))

    @property
    def path(self) -> str:
        return rclone.join(self.remote, self.env, self.service, self.db, self.name)


def group(remote: str, env: str, items: list[dict]) -> list[RemoteBackup]:
    """lsjson items under <remote>/<env> -> backups (oldest first); other files ignored."""
    names: dict[tuple[str, str], dict[str, int]] = {}
    for item in items:
        parts = item["path"].split("/")
        if len(parts) != 3:
            continue
        service, db, name = parts
        names.setdefault((service, db), {})[name] = item["size"]
    out = []
    for (service, db), files in names.items():
        for name, size in files.items():
            if layout.NAME.match(name):
                there = tuple(x for x in ("", ".sha256", ".json") if f"{name}{x}" in files)
                out.append(RemoteBackup(remote, env, service, db, name, size, len(there) == 3, there))
    return sorted(out, key=lambda r: (r.service, r.db, r.taken_at))


def listing(o: Offsite, env: str, remote: str) -> list[RemoteBackup]:
    base = rclone.join(remote, layout.safe_part("environment", env))
    proc = run_rclone(o, rclone.lsjson(base), f"listing {base}", check=False)
    if proc.returncode != 0:
        if "directory not found" in proc.stderr:
            return []
        raise OpsError(f"listing {base}: {rclone.error_line(proc.stderr)}")
    return group(remote, env, rclone.parse_lsjson(proc.stdout))


def pick_remote(o: Offsite, remote: str | None) -> str:
    """The remote named (NAME or NAME:path), or the first; refused when none is set."""
    if not o.enabled:
        raise OpsError("no off-site remote configured (backup.offsite.remotes in invoke.yaml)")
    if remote is None:
        return o.remotes[0]
    if remote not in o.remotes and remote not in [rclone.remote_name(r) for r in o.remotes]:
        raise OpsError(f"{remote!r} is not one of the off-site remotes: {', '.join(o.remotes)}")
    return next(r for r in o.remotes if remote in (r, rclone.remote_name(r)))


def remotes_of(o: Offsite, remote: str | None = None) -> list[str]:
    """The one remote named, or every configured one; refused when none is set."""
    return [pick_remote(o, remote)] if remote or not o.enabled else list(o.remotes)


def fetch(o: Offsite, rb: RemoteBackup, dest: Path) -> layout.Backup:
    """Download a complete remote copy into dest/.offsite/<env>/<service>/<db>/ (under the
    backup directory, so the usual checks and restore apply). Its own manifest comes
    with it."""
    if not rb.complete:
        raise OpsError(f"{rb.path}: incomplete off-site copy (no sidecar or manifest)")
    directory = dest / ".offsite" / layout.db_dir(Path(), rb.env, rb.service, rb.db)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    local = layout.Backup(directory / rb.name)
    for suffix in (".json", ".sha256", ""):
        partial = directory / f"{rb.name}{suffix}.partial"
        with progress.watching(partial, f"{rb.name}{suffix}: downloaded",
                               total=rb.size if not suffix else None):
            run_rclone(o, rclone.copyto(rb.path + suffix, str(partial)), f"download of {rb.path}{suffix}")
        os.replace(partial, directory / f"{rb.name}{suffix}")
    fsync_dir(directory)
    return local


def prune(o: Offsite, env: str, remote: str, dry_run: bool = False,
          service: str | None = None) -> list[tuple[RemoteBackup, str]]:
    """GFS off-site, per database (of `service`, or all): complete copies beyond the
    policy, and debris of failed uploads (a dump with no manifest) older than the newest
    complete copy. The newest complete copy is never deleted."""
    out = []
    found = [r for r in listing(o, env, remote) if not service or r.service == service]
    for key in sorted({(r.service, r.db) for r in found}):
        mine = [r for r in found if (r.service, r.db) == key]
        complete = [r for r in mine if r.complete]
        items = [retention.Item(r.name, r.taken_at, True) for r in complete]
        doomed = set(retention.to_delete(items, o.policy))
        newest = complete[-1].taken_at if complete else None
        out += [(r, "retention") for r in complete if r.name in doomed]
        out += [(r, "incomplete upload") for r in mine
                if not r.complete and newest is not None and r.taken_at < newest]
    if not dry_run:
        for r, _ in out:
            # Manifest first: from then on the copy no longer counts, whatever happens.
            for suffix in (".json", ".sha256", ""):
                if suffix in r.suffixes:
                    run_rclone(o, rclone.deletefile(r.path + suffix), f"deleting {r.path}{suffix}")
    return out
