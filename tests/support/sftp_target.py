"""An SFTP server on loopback, for the off-site tests and `bench-backup --sandbox`: the
sandbox host image's sshd with a key of its own, every host key it offers recorded in
a known_hosts file, and the RCLONE_CONFIG_<NAME>_* variables that make it a named
rclone remote. Nothing but this machine's loopback is reached."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def sftp_target(root: Path, name: str, label: str = "ops.test=offsite", timeout: float = 60):
    """Yields (container, rclone variables for remote `name`); removes both after."""
    import docker

    from ops.sandbox import IMAGE, ensure_image, new_keypair

    ensure_image(root, "http://deb.debian.org/debian", sys.stderr)
    home = Path(tempfile.mkdtemp(prefix="ops-sftp-"))
    private, public = new_keypair()
    (home / "key").write_text(private)
    (home / "key").chmod(0o600)
    port = _free_port()
    key, value = label.split("=", 1)
    server = docker.from_env().containers.run(
        IMAGE, detach=True, environment={"SANDBOX_AUTHORIZED_KEY": public},
        ports={"22/tcp": ("127.0.0.1", port)}, labels={key: value})
    try:
        deadline = time.monotonic() + timeout
        while True:
            code, keys = server.exec_run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"])
            if code == 0 and keys.strip() and b"sshd" in server.exec_run(["ps", "-e"]).output:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sftp target not ready: {server.logs()[-300:]!r}")
            time.sleep(0.5)
        # rclone refuses a host whose offered key type is not listed: record them all.
        (home / "known_hosts").write_text("".join(
            f"[127.0.0.1]:{port} {' '.join(line.split()[:2])}\n" for line in keys.decode().splitlines()))
        prefix = f"RCLONE_CONFIG_{name.upper()}_"
        yield server, {prefix + "TYPE": "sftp", prefix + "HOST": "127.0.0.1", prefix + "PORT": str(port),
                       prefix + "USER": "root", prefix + "KEY_FILE": str(home / "key"),
                       prefix + "KNOWN_HOSTS_FILE": str(home / "known_hosts")}
    finally:
        server.remove(force=True, v=True)
        shutil.rmtree(home, ignore_errors=True)
