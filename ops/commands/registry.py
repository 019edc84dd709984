"""Registry delivery, as commands (pure): where an image lives on the registry, and the
login / pull a node runs. Passwords only ever travel on stdin."""

from __future__ import annotations

import re

from .image_refs import NAME, check_tag
from .line import Line, cmd

# host[:port], as Docker reads the first path component of a reference
SERVER = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])"
                    r"(?::[0-9]{1,5})?$")
USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")


def check_server(server: str) -> str:
    if not isinstance(server, str) or not SERVER.match(server) or "/" in server:
        raise ValueError(f"invalid registry server {server!r} (host[:port])")
    port = server.rpartition(":")[2] if not server.endswith("]") and ":" in server else None
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid registry port in {server!r}")
    return server


def check_user(user: str) -> str:
    if not isinstance(user, str) or not USER.match(user):
        raise ValueError(f"invalid registry user {user!r}")
    return user


def has_registry_part(name: str) -> bool:
    """Docker's rule: the first component names a registry when it has a dot or a
    port, or is `localhost`."""
    first, sep, _ = name.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def repository(server: str, name: str) -> str:
    """Where the image `name` (a repository, no tag) lives on `server`: its path kept,
    any registry part it had replaced."""
    if not NAME.match(name):
        raise ValueError(f"invalid image name {name!r}")
    path = name.partition("/")[2] if has_registry_part(name) else name
    return f"{check_server(server)}/{path}"


def login(server: str, user: str) -> Line:
    """`docker login` on a node; the password comes on stdin."""
    return cmd("docker", "login", "--username", check_user(user), "--password-stdin",
               check_server(server)).quiet()


def pull(ref: str) -> Line:
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"reference without a tag: {ref!r}")
    check_tag(tag)
    return cmd("docker", "pull", "--quiet", ref).quiet()
