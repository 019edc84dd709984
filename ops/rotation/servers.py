"""How each kind of server changes a password in place (pure): shell scripts run inside
its container with `docker exec -i`, every secret on stdin (one per line), never in an
argument list that `ps` would show.

- Postgres (`database`): `ALTER ROLE ... PASSWORD` with a SCRAM-SHA-256 verifier computed
  here, so the plain password never reaches the server (nor its log, were statements
  logged). One password per role: the new one replaces the old; open connections stay.
- Redis (`cache`): the ACL holds several passwords per user. The new one is added, the
  old removed once every client has moved (`ACL SAVE`: the ACL file on the data volume
  is what a restart reads, see compose.yaml).
- RabbitMQ (`broker`): `rabbitmqctl change_password`, the password read from stdin. One
  per user, like Postgres; open connections stay.
Each server keeps the password in its own data (catalog, ACL file, Mnesia): the secret
its container was created with is read only when its volume is first initialised."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from ..commands.line import Line, cmd, pipe
from ..commands.line import script as script_line

ROLES = ("database", "cache", "broker")
SAFE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")  # a user or database name we put in SQL or argv


@dataclass(frozen=True)
class Server:
    role: str  # database | cache | broker
    service: str
    user: str
    database: str = ""  # Postgres: where to connect

    @property
    def holds_two(self) -> bool:
        """Old and new are valid together (the old is removed after the clients moved)."""
        return self.role == "cache"


@dataclass(frozen=True)
class Script:
    script: Line  # for `sh -c` in the container
    stdin: str
    what: str

    def command(self, container: str) -> Line:
        """The script in `container` (`docker exec -i`), run by a shell on the container's
        host that first reads all of stdin: the command never ends before our end of
        stdin is written and closed, even when `docker exec` itself fails at once (over
        SSH, writing to a channel already gone fails the copy, not the command, and its
        own error would be lost)."""
        return cmd("sh", "-c", 'in=$(cat); printf \'%s\\n\' "$in" | docker exec -i "$0" sh -c "$1"',
                   container, self.script)

def scram_sha256(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The verifier Postgres stores for a SCRAM-SHA-256 password (RFC 5802/7677), as
    psql's \\password and libpq's PQencryptPasswordConn compute it. `password` is
    ASCII here (generated), which SASLprep leaves as it is."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def check_names(server: Server) -> None:
    for what, value in (("user", server.user), ("database", server.database)):
        if value and not SAFE.match(value):
            raise ValueError(f"{server.service}: {what} {value!r} is not a plain name "
                             "(letters, digits, . _ -)")


def _psql(server: Server, *more: str) -> Line:
    # The local socket: trusted for the container's own processes (the image's default).
    return cmd("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", server.user,
               "-d", server.database or server.user, *more)


def set_password(server: Server, old: str, new: str) -> Script:
    """Make `new` valid (for Redis: beside `old`)."""
    check_names(server)
    if server.role == "database":
        verifier = scram_sha256(new)
        return Script(_psql(server, "-f", "-"), f'ALTER ROLE "{server.user}" PASSWORD \'{verifier}\';\n',
                      f"set the new password of role {server.user}")
    if server.role == "cache":
        return _redis_acl(">", old, new, server.user, f"add the new password of redis user {server.user}")
    if server.role == "broker":
        return Script(cmd("rabbitmqctl", "-q", "change_password", server.user), new + "\n",
                      f"set the new password of broker user {server.user}")
    raise ValueError(f"no password rotation for role {server.role!r}")


def drop_password(server: Server, keep: str, drop: str) -> Script | None:
    """Servers that held two: remove `drop` (authenticating with `keep`). None otherwise."""
    if not server.holds_two:
        return None
    return _redis_acl("<", keep, drop, server.user, f"remove the old password of redis user {server.user}")


def restore_password(server: Server, old: str, new: str) -> Script:
    """Undo set_password: only `old` valid again."""
    if server.role == "cache":
        return _redis_acl("<", old, new, server.user, f"remove the new password of redis user {server.user}")
    return set_password(server, new, old)


def _redis_acl(op: str, auth: str, password: str, user: str, what: str) -> Script:
    """`ACL SETUSER user <op><password>` then `ACL SAVE`, authenticated with `auth`: the
    commands reach redis-cli on its stdin, written by printf (a shell builtin: no argv
    holds a password); any reply but OK fails."""
    # A script: the values come on stdin into shell variables, never into an argv.
    script = script_line("read -r auth; read -r arg; read -r user; "
                         f"out=$(printf 'ACL SETUSER %s {op}%s\\nACL SAVE\\n' \"$user\" \"$arg\" "
                         "| REDISCLI_AUTH=\"$auth\" redis-cli 2>&1); "
                         "printf '%s\\n' \"$out\"; ! printf '%s\\n' \"$out\" | grep -qv '^OK$'")
    return Script(script, f"{auth}\n{password}\n{user}\n", what)


def login(server: Server, password: str) -> Script:
    """Succeeds only when `password` authenticates a new connection, as a client's
    would (over TCP for Postgres: the local socket is trusted without one)."""
    check_names(server)
    if server.role == "database":
        psql = cmd("psql", "-X", "-q", "-h", "127.0.0.1", "-U", server.user,
                   "-d", server.database or server.user, "-tAc", "select 1")
        return Script(script_line(f"read -r p; PGPASSWORD=$p {psql}"), password + "\n",
                      f"log in as {server.user}")
    if server.role == "cache":
        ping = pipe(cmd("redis-cli", "--user", server.user, "ping"), cmd("grep", "-qx", "PONG"))
        return Script(script_line(f"read -r p; REDISCLI_AUTH=$p {ping}"), password + "\n",
                      f"log in to redis as {server.user}")
    if server.role == "broker":
        return Script(cmd("rabbitmqctl", "-q", "authenticate_user", server.user),
                      password + "\n", f"log in to the broker as {server.user}")
    raise ValueError(f"no password rotation for role {server.role!r}")
