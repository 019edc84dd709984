"""The health probes run inside containers (via the Engine's exec): `line.Line`s whose
argv the exec runs (no shell of ours; `sh -c` where the probe is a script)."""

from collections.abc import Callable
from dataclasses import dataclass

from ..facts import archiving
from .line import Line, cmd, words

# Postgres: a real query over the container's own socket (client = server version).
POSTGRES_SELECT_1 = cmd(
    "sh", "-c",
    'psql -X -q -t -A -w -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"'
    ' -c "SELECT 1"',
)

# Redis: PING; the password comes from the *_FILE secret into REDISCLI_AUTH, never argv.
# After `inv secrets.rotate` that copy is older than the server's ACL: NOAUTH then, which
# still proves the server answers (the api's readiness logs in as the clients do).
REDIS_PING = cmd(
    "sh", "-c",
    'if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")";'
    " export REDISCLI_AUTH; fi; redis-cli ping 2>/dev/null",
)
REDIS_ROTATED = "NOAUTH Authentication required."

# RabbitMQ: the node answers its CLI (the same tool in Debian's package and the official
# image; the Erlang cookie is the container user's own).
BROKER_PING = cmd("rabbitmq-diagnostics", "-q", "ping")


# A hung server (a stopped postmaster, a Redis stuck on its disk) accepts the client's
# connection and never answers: psql and redis-cli then wait forever, and so would the
# exec and `inv health`. `timeout` (coreutils, or busybox) kills the client in the
# container; an image without it runs the client as it is.
BOUNDED = ('s=$1; shift; if command -v timeout >/dev/null 2>&1; '
           'then exec timeout -s KILL "$s" "$@"; fi; exec "$@"')
KILLED = 137  # 128 + SIGKILL: what the shell reports for a client `timeout` killed


def bounded(command, seconds: float) -> Line:
    """`command` (a plain one) run in a container, killed after `seconds`."""
    return cmd("sh", "-c", BOUNDED, "probe", f"{seconds:g}", *words(command))


@dataclass(frozen=True)
class RoleProbe:
    """What `inv health` runs inside every container of a role, locally and on Swarm."""

    command: Line
    name: str  # the check's name in the report
    expect: str  # the whole output of a healthy answer
    # Costs far more than the others (boots an Erlang VM): started first, so that a
    # health run lasts about as long as this probe alone.
    slow: bool = False
    timeout: float = 5.0  # seconds in the container before the client is killed
    also_ok: tuple = ()  # (output, detail): other answers that prove the server answers
    # (code, output) -> (ok, detail) or (ok, warning, detail): a probe whose answer is
    # read rather than matched (the archiving checks).
    judge: Callable | None = None

    @property
    def line(self) -> Line:
        return bounded(self.command, self.timeout)

    def verdict(self, code: int, out: str) -> tuple:
        out = out.strip()
        if self.judge is None and code == 0 and out == self.expect:
            return True, f"{self.name} -> {out}"
        for answer, detail in self.also_ok:
            if code == 0 and out == answer:
                return True, f"{self.name} -> {detail}"
        if code == KILLED and not out:
            return False, f"no answer in {self.timeout:g} s (killed)"
        if self.judge is not None:
            return self.judge(code, out)
        return False, f"exit {code}: {out[-200:]}"


BY_ROLE = {"database": RoleProbe(POSTGRES_SELECT_1, "SELECT 1", "1"),
           "cache": RoleProbe(REDIS_PING, "PING", "PONG", also_ok=((
               REDIS_ROTATED, "answers (the password was rotated since this container "
                              "started; the api's readiness checks the clients')"),)),
           # The Erlang VM's start alone can take 2-3 s on a loaded node.
           "broker": RoleProbe(BROKER_PING, "ping", "Ping succeeded", slow=True, timeout=10.0)}


def http_probe(port: int, paths) -> Line:
    """One python process that GETs each path on localhost and prints `path status` lines.

    Plain sockets and `-S` (no site import): python starts in a CPU-limited container,
    and urllib's import chain would cost more than the requests themselves.
    """
    code = (
        "import socket,sys\n"
        "port=int(sys.argv[1])\n"
        "for p in sys.argv[2:]:\n"
        "    try:\n"
        "        s=socket.create_connection(('127.0.0.1',port),timeout=3)\n"
        "        s.sendall(('GET %s HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n'%p).encode())\n"
        "        line=s.makefile('rb').readline().split()\n"
        "        st=line[1].decode() if len(line)>1 else 'error:empty'\n"
        "        s.close()\n"
        "    except Exception as x: st='error:'+type(x).__name__\n"
        "    print(p, st)\n"
    )
    return cmd("python3", "-S", "-c", code, int(port), *paths)


def parse_http_probe(output: str) -> dict[str, str]:
    out = {}
    for line in output.strip().splitlines():
        path, _, status = line.strip().partition(" ")
        if path.startswith("/"):
            out[path] = status
    return out


# Continuous archiving: the database's archiver and what waits in pg_wal (ages in
# seconds, -1: never), then the space left on its volume.
ARCHIVING = cmd(
    "sh", "-c",
    'psql -X -q -t -A -w -F " " -U "${POSTGRES_USER:-postgres}" '
    '-d "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" -c "'
    "SELECT current_setting('archive_mode'), "
    "coalesce(extract(epoch FROM now() - last_archived_time)::int, -1), failed_count, "
    "coalesce(extract(epoch FROM now() - last_failed_time)::int, -1), "
    "(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), "
    "coalesce((SELECT extract(epoch FROM now() - min(modification))::int "
    "FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), 0), "
    '(SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()) FROM pg_stat_archiver" && '
    "df -P -B1 \"${PGDATA:-/var/lib/postgresql/data}\" | awk 'NR == 2 {print $4}'",
)
# The repository's base backups of every stanza (as the user that owns it).
BASE_BACKUPS = cmd("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                   "pgbackrest", "--output=json", "info")
# Further probes of a role, each a line of its own in the report.
ALSO_BY_ROLE = {
    "database": (RoleProbe(ARCHIVING, "archiving", "", judge=archiving.archiver_verdict),),
    "backup-repository": (RoleProbe(BASE_BACKUPS, "base backups", "", timeout=10.0,
                                    judge=archiving.base_backups_verdict),),
}
