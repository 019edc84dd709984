"""The pgBackRest repository, copied off its node and off-site.

`pull`: an incremental mirror of the repository service's volume on this machine, under
`<BACKUP_DIR>/<env>/.pgbackrest/` (the machine that runs `db.backup`, as for the dumps):
only files that are new or changed are streamed (tar through `docker exec`, here or
over SSH). pgBackRest's data files (backups, WAL) never change once written; its info
files (`*.info`, `*.info.copy`: which backups exist) do. So the info files are read
*first* (a listing of the backups at that moment), and moved into the mirror *last*,
after every data file: an interrupted pull never leaves a mirror whose info names a
file it lacks. Files the repository expired are deleted last.

`push`: the mirror to `<remote>/<env>/.pgbackrest/` with rclone, in the same order (data,
then info and deletions), then proven with `rclone check` (the backend's hashes, or
the bytes read back where it keeps none, or always with `verify: download`).

It runs inside `db.backup`, after the base backups, under that run's lock: no base
backup or expiry of ours runs meanwhile; only archive-push adds WAL files, which the
next run takes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path, PurePosixPath

from ..commands import pgbackrest as br
from ..commands import rclone
from ..errors import OpsError
from ..files import fsync_dir
from . import layout

MIRROR = ".pgbackrest"  # under <dest>/<env>/ and <remote>/<env>/; never a service name
INCOMING = ".incoming"  # info files read first, moved in last
LIST = r"find . -type f ! -name '*.tmp' -printf '%P\t%s\t%T@\n'"


def is_info(path: str) -> bool:
    """pgBackRest's info files: the ones that change (and name the rest)."""
    return path.endswith((".info", ".info.copy"))


def parse_listing(text: str) -> dict[str, tuple[int, int]]:
    """`find -printf '%P\\t%s\\t%T@'` lines -> {relative path: (size, whole seconds)};
    a path that could climb out or is not plain is refused."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            path, size, mtime = line.split("\t")
            entry = (int(size), int(float(mtime)))
        except ValueError as exc:
            raise OpsError(f"repository listing: unreadable line {line[:120]!r}") from exc
        out[checked_path(path)] = entry
    return out


def checked_path(path: str) -> str:
    p = PurePosixPath(path)
    if (not path or p.is_absolute() or any(part in ("", ".", "..") for part in path.split("/"))
            or path.startswith(INCOMING) or any(ord(c) < 32 for c in path)):
        raise OpsError(f"repository listing: refused path {path[:120]!r}")
    return path


def plan(theirs: dict[str, tuple[int, int]], mine: dict[str, tuple[int, int]]
         ) -> tuple[list[str], list[str]]:
    """(to fetch, info files first; to delete) for the mirror to equal the repository."""
    fetch = [p for p, e in theirs.items() if mine.get(p) != e]
    fetch.sort(key=lambda p: (not is_info(p), p))
    return fetch, sorted(p for p in mine if p not in theirs)


def local_listing(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    if root.is_dir():
        for p in root.rglob("*"):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and not rel.startswith(INCOMING):
                st = p.stat()
                out[rel] = (st.st_size, int(st.st_mtime))
    return out


def mirror_dir(dest: Path, env: str) -> Path:
    return dest / layout.safe_part("environment", env) / MIRROR


def pull(repo, root: Path, timeout: float = 6 * 3600) -> dict:
    """The mirror at `root` made equal to the repository `repo` (pitr.Repository)."""
    listing = repo.run(["sh", "-c", f"cd {br.REPO_PATH} && {LIST}"], "list the repository", 600)
    theirs = parse_listing(listing)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    fetch, delete = plan(theirs, local_listing(root))
    incoming = root / INCOMING
    shutil.rmtree(incoming, ignore_errors=True)
    size = _stream(repo, root, fetch, timeout) if fetch else 0
    for path in fetch:  # the info files, now that every file they name is here
        if is_info(path):
            _place(incoming / path, root / path)
    shutil.rmtree(incoming, ignore_errors=True)
    for path in delete:
        (root / path).unlink(missing_ok=True)
    _drop_empty_dirs(root)
    return {"files": len(theirs), "fetched": len(fetch), "bytes": size, "deleted": len(delete),
            "path": str(root)}


def _stream(repo, root: Path, wanted: list[str], timeout: float) -> int:
    """tar of `wanted` (in that order) out of the repository's container, each file
    written beside its place and renamed in; info files into the incoming directory."""
    stage = repo.container.exec(["tar", "-C", br.REPO_PATH, "--null", "-T", "-", "-cf", "-"],
                                stdin=True, user="postgres")
    proc = stage.popen(subprocess.PIPE, subprocess.PIPE, subprocess.PIPE)

    def feed() -> None:  # a thread: tar reads the list while it writes the archive
        try:
            proc.stdin.write(b"".join(p.encode() + b"\0" for p in wanted))
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()

    errors: list[bytes] = []
    feeder = threading.Thread(target=feed, daemon=True)
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    feeder.start()
    reader.start()
    expected, total = set(wanted), 0
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = checked_path(member.name)
                if name not in expected or not member.isfile():
                    raise OpsError(f"repository copy: unexpected entry {name!r} in the stream")
                target = root / INCOMING / name if is_info(name) else root / name
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                partial = target.with_name(target.name + ".partial")
                with tar.extractfile(member) as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.utime(partial, (member.mtime, member.mtime))
                os.replace(partial, target)
                expected.discard(name)
                total += member.size
        rc = proc.wait(timeout=timeout)
    except tarfile.TarError as exc:
        proc.kill()
        raise OpsError(f"repository copy: the stream broke off ({exc})") from exc
    except BaseException:
        proc.kill()
        raise
    finally:
        feeder.join(5)
        reader.join(5)
    if rc != 0 or expected:
        said = b"".join(errors).decode(errors="replace").strip().splitlines()
        raise OpsError("repository copy: " + (said[-1] if said else f"tar exit {rc}")
                       + (f" ({len(expected)} files not received)" if expected else ""))
    return total


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(src, dst)
    fsync_dir(dst.parent)


def _drop_empty_dirs(root: Path) -> None:
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                    reverse=True):
        if not any(d.iterdir()):
            d.rmdir()


# -- off-site -----------------------------------------------------------------------------

def remote_path(remote: str, env: str) -> str:
    return rclone.join(remote, layout.safe_part("environment", env), MIRROR)


def push(o, root: Path, env: str, remote: str) -> dict:
    """The mirror to `remote`: data files, then info files and deletions (rclone sync),
    then proven by `rclone check`. `o`: offsite.Offsite (its rclone variables, verify)."""
    from .offsite import run_rclone

    target = remote_path(remote, env)
    run_rclone(o, rclone.copy_tree(str(root), target, exclude=("*.info", "*.info.copy")),
         f"repository copy to {remote}")
    run_rclone(o, rclone.sync_tree(str(root), target), f"repository copy to {remote}")
    return {"remote": remote, "path": target, "verified_by": check(o, root, target, remote)}


def check(o, root: Path, target: str, remote: str) -> str:
    """`rclone check` of the mirror against the copy: hashes where the backend keeps
    them, else (or with verify: download) the copy's bytes read back."""
    from .offsite import run_rclone

    download = o.verify == "download"
    for _ in range(2):
        proc = run_rclone(o, rclone.check_tree(str(root), target, download), f"checking the copy on {remote}",
                    check=False)
        if proc.returncode == 0 and not download and rclone.hashes_unchecked(proc.stderr):
            download = True  # the backend keeps no hash rclone can compare: read back
            continue
        if proc.returncode != 0:
            raise OpsError(f"the repository's copy on {remote} differs from it: "
                           f"{rclone.check_error(proc.stderr)}")
        return "read back" if download else "hashes (remote)"
    raise AssertionError("unreachable")
