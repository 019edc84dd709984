"""Read-only Docker Engine API calls over its Unix socket with the standard library:
for a command that makes one or two reads (the audit's image users), importing the
docker SDK and requests (~80 ms) costs more than the reads themselves."""

from __future__ import annotations

import http.client
import json
import os
import socket
from urllib.parse import quote

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def socket_path(environ=os.environ) -> str | None:
    """The engine's Unix socket, or None when DOCKER_HOST names another transport (tcp,
    ssh: the docker SDK's job) or a context other than the default is chosen."""
    host = environ.get("DOCKER_HOST") or ""
    if environ.get("DOCKER_CONTEXT") not in (None, "", "default"):
        return None
    if not host:
        return DEFAULT_SOCKET
    return host[len("unix://"):] if host.startswith("unix://") else None


def short_reference(name: str) -> str:
    """An image reference as the engine lists it: Docker Hub's prefixes dropped,
    `:latest` when it names no tag or digest."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/",
                   "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in last else f"{name}:latest"


def get_json(path: str, sock: str, timeout: float = 10.0):
    """GET `path` from the engine; (status, decoded JSON or None)."""
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(body) if body else None
    except ValueError:
        return resp.status, None


def image_users(names, sock: str) -> dict[str, str]:
    """{image: the user it runs as ("" for root)} of the locally present ones among
    `names` (as docker_api.image_users); OSError when the engine does not answer."""
    status, images = get_json("/images/json", sock)
    if status != 200 or not isinstance(images, list):
        raise OSError(f"the engine answered {status} to an image listing")
    present = {ref for image in images for ref in
               [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]}
    users = {}
    for name in dict.fromkeys(n for n in names if n and short_reference(n) in present):
        status, info = get_json(f"/images/{quote(name, safe='')}/json", sock)
        if status == 200 and isinstance(info, dict):
            users[name] = str((info.get("Config") or {}).get("User") or "")
    return users
