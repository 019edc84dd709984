"""Getting an image onto every node without a registry: `docker save` streamed over
SSH into `docker load`, only to nodes that lack it. Binary-safe (a raw paramiko
channel, not a text-mode runner) and fully checked on both ends."""

from __future__ import annotations

import shlex
import subprocess
import tempfile

from ..errors import OpsError
from .connect import open_checked, run
from .hosts import Inventory

CHUNK = 1 << 20


def has_image(conn, host, ref: str) -> bool:
    return run(conn, f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(ref)}", host,
               "image check", warn=True).exited == 0


def stream_images(conn, host, refs: list[str]) -> int:
    """docker save (local) | docker load (remote); returns bytes sent. One stream for
    all images, so the layers they share (the base) cross the wire once."""
    sent = 0
    with tempfile.TemporaryFile() as err:
        save = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE, stderr=err)
        chan = conn.client.get_transport().open_session()
        try:
            chan.exec_command("docker load")
            while chunk := save.stdout.read(CHUNK):
                chan.sendall(chunk)
                sent += len(chunk)
            chan.shutdown_write()
            remote_rc = chan.recv_exit_status()
            remote_err = b""
            while chan.recv_stderr_ready():
                remote_err += chan.recv_stderr(65536)
        except BaseException:
            save.kill()
            raise
        finally:
            save.wait()
            chan.close()
        if save.returncode != 0:
            err.seek(0)
            raise OpsError(f"docker save {' '.join(refs)} failed: "
                           f"{err.read().decode(errors='replace').strip()}")
    if remote_rc != 0:
        raise OpsError(f"{host.name}: docker load of {' '.join(refs)} failed (exit {remote_rc}): "
                       f"{remote_err.decode(errors='replace').strip()[-200:]}")
    return sent


def deliver(inv: Inventory, refs, out) -> dict[str, list[str]]:
    """Each image to each host that lacks it. `refs` is a list, or a function of the
    host giving its list (the manager runs more than the workers).
    Returns {host: [images sent]}."""
    sent: dict[str, list[str]] = {}
    for host in inv.hosts:
        wanted = refs(host) if callable(refs) else refs
        with open_checked(host, inv) as conn:
            missing = [ref for ref in wanted if not has_image(conn, host, ref)]
            if not missing:
                continue
            size = stream_images(conn, host, missing)
            for ref in missing:
                if not has_image(conn, host, ref):
                    raise OpsError(f"{host.name}: {ref} still missing after docker load")
            sent[host.name] = missing
            print(f"{host.name}: loaded {', '.join(missing)} ({size / 1e6:.0f} MB over SSH)", file=out)
    return sent
