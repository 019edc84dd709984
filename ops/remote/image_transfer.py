"""Getting images onto every node without a registry: `docker save` here, `docker load`
there, over SSH, only to nodes that lack them, and only the layers they lack.

`docker load` reads a layer's file only when the node does not already have that layer
chain, so layers the node has are left out of the archive: a new release of the api
sends its top layer (kilobytes), not the 380 MB base. Binary-safe (the node's runner
streams bytes) and checked on both ends."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import tempfile
import threading

from .. import progress
from ..commands import docker
from ..commands import image_refs as images_cmd
from ..errors import OpsError
from ..facts.values import load_json
from ..runtime.fanout import each_host
from ..runtime.runner import LOCAL


def missing_on(node, refs: list[str]) -> list[str]:
    """The images of `refs` the node's engine does not have: one round trip for all."""
    if not refs:
        return []
    out = node.run(images_cmd.missing(refs), "image check").stdout
    gone = set(out.splitlines())
    return [r for r in refs if r in gone]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The layer chain IDs of an image (what the engine's layer store is keyed by)."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else
                   "sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


def delivery_note(sent: int, full: int) -> str:
    """What crossed the wire against the whole archive. The stream rewrites tar headers,
    so `sent` can exceed `full` by a little: that is a whole image, never "-0 MB"."""
    had = full - sent
    note = f"{sent / 1e6:.1f} MB over SSH"
    if had >= 0.5e6:
        return note + f"; the node had the other {had / 1e6:.0f} MB"
    return note + "; the whole image"


def remote_chains(node) -> set[str]:
    text = node.run(images_cmd.layer_lists(), "list image layers").stdout
    chains: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if line and line != "null":
            chains.update(chain_ids(load_json(line, f"{node.name}: image layers")))
    return chains


def skippable(tar: tarfile.TarFile, have: set[str]) -> set[str]:
    """Archive members (layer files) whose layer chain the node already has. A file
    shared by two images stays if either image lacks its chain there."""
    have_paths, need_paths = set(), set()
    for entry in json.load(tar.extractfile("manifest.json")):
        diff_ids = json.load(tar.extractfile(entry["Config"]))["rootfs"]["diff_ids"]
        for path, chain in zip(entry["Layers"], chain_ids(diff_ids), strict=True):
            (have_paths if chain in have else need_paths).add(path)
    return have_paths - need_paths


class _CountingWriter:
    def __init__(self, stream, meter=None):
        self.stream, self.sent, self.meter = stream, 0, meter

    def write(self, data: bytes) -> int:
        self.stream.write(data)
        self.sent += len(data)
        if self.meter is not None:
            self.meter.add(len(data))
        return len(data)


def save(refs: list[str], archive) -> int:
    """docker save into a (temporary) file; returns its size."""
    with tempfile.TemporaryFile() as err:
        saving = LOCAL.popen(docker.save(*refs).argv, subprocess.DEVNULL, archive, err)
        if saving.wait() != 0:
            err.seek(0)
            raise OpsError(f"docker save {' '.join(refs)} failed: "
                           f"{err.read().decode(errors='replace').strip()}")
    return archive.tell()


def stream_images(node, refs: list[str], archive) -> int:
    """The saved archive (docker load on the node), minus the layers the node has.
    Returns the bytes sent."""
    have = remote_chains(node)
    archive.seek(0)
    with tempfile.TemporaryFile() as err:
        proc = node.popen(docker.load().argv, subprocess.PIPE, subprocess.DEVNULL, err)
        try:
            with tarfile.open(fileobj=archive, mode="r:") as src:
                skip = skippable(src, have)
                sending = [m for m in src.getmembers() if m.name not in skip]
                with progress.meter(f"{node.name}: sent", sum(m.size for m in sending)) as meter:
                    writer = _CountingWriter(proc.stdin, meter)
                    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as out:
                        for member in sending:
                            out.addfile(member, src.extractfile(member) if member.isfile() else None)
            proc.stdin.close()
            remote_rc = proc.wait()
        except BaseException:
            node.end(proc)
            raise
        err.seek(0)
        remote_err = err.read()
    if remote_rc != 0:
        raise OpsError(f"{node.name}: docker load of {' '.join(refs)} failed (exit {remote_rc}): "
                       f"{remote_err.decode(errors='replace').strip()[-200:]}")
    return writer.sent


class _Archives:
    """One `docker save` per distinct image set, shared by the hosts' threads: each
    reads it through a file handle of its own."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="ops-images-")
        self._lock = threading.Lock()
        self._saved: dict[tuple[str, ...], tuple[threading.Lock, list]] = {}

    def get(self, refs: list[str]) -> tuple[str, int]:
        """(path, size) of the archive of `refs`, saved by the first thread that asks."""
        key = tuple(refs)
        with self._lock:
            lock, entry = self._saved.setdefault(key, (threading.Lock(), []))
        with lock:
            if not entry:
                path = f"{self._dir.name}/{len(self._saved)}-{threading.get_ident()}.tar"
                with open(path, "wb") as archive:
                    entry.append((path, save(refs, archive)))
            return entry[0]

    def close(self) -> None:
        self._dir.cleanup()


def deliver(machines, refs, out, setup=None) -> dict[str, list[str]]:
    """Each image to each host that lacks it, to all hosts at once. `refs` is a list, or
    a function of the host giving its list (the manager runs more than the workers);
    `setup(node)` runs first on each host's runner.
    Returns {host: [images sent]}."""
    archives = _Archives()

    def one(host) -> list[str]:
        wanted = refs(host) if callable(refs) else refs
        node = machines.runner(host)
        if setup is not None:
            setup(node)
        missing = missing_on(node, list(wanted))
        if not missing:
            return []
        path, full = archives.get(missing)
        with open(path, "rb") as archive:
            size = stream_images(node, missing, archive)
        _check_loaded(node, missing)
        print(f"{host.name}: loaded {', '.join(missing)} ({delivery_note(size, full)})", file=out)
        return missing

    try:
        return {name: sent for name, sent in each_host(machines.hosts, one).items() if sent}
    finally:
        archives.close()


def _check_loaded(node, refs: list[str]) -> None:
    still = missing_on(node, refs)
    if still:
        raise OpsError(f"{node.name}: {', '.join(still)} still missing after docker load")
