"""argv of the health probes run inside containers (via the Engine's exec)."""

from dataclasses import dataclass

# Postgres: a real query over the container's own socket (client = server version).
POSTGRES_SELECT_1 = [
    "sh", "-c",
    'psql -X -q -t -A -w -U "${POSTGRES_USER:-postgres}" -d "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"'
    ' -c "SELECT 1"',
]

# Redis: PING; the password comes from the *_FILE secret into REDISCLI_AUTH, never argv.
REDIS_PING = [
    "sh", "-c",
    'if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")";'
    " export REDISCLI_AUTH; fi; redis-cli ping",
]

# RabbitMQ: the node answers its CLI (the same tool in Debian's package and the official
# image; the Erlang cookie is the container user's own).
BROKER_PING = ["rabbitmq-diagnostics", "-q", "ping"]


@dataclass(frozen=True)
class RoleProbe:
    """What `inv health` runs inside every container of a role, locally and on Swarm."""

    argv: list
    name: str  # the check's name in the report
    expect: str  # the whole output of a healthy answer
    # Costs far more than the others (boots an Erlang VM): started first, so that a
    # health run lasts about as long as this probe alone.
    slow: bool = False

    def verdict(self, code: int, out: str) -> tuple[bool, str]:
        out = out.strip()
        if code == 0 and out == self.expect:
            return True, f"{self.name} -> {out}"
        return False, f"exit {code}: {out[-200:]}"


BY_ROLE = {"database": RoleProbe(POSTGRES_SELECT_1, "SELECT 1", "1"),
           "cache": RoleProbe(REDIS_PING, "PING", "PONG"),
           "broker": RoleProbe(BROKER_PING, "ping", "Ping succeeded", slow=True)}


def http_probe(port: int, paths) -> list[str]:
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
    return ["python3", "-S", "-c", code, str(int(port)), *paths]


def parse_http_probe(output: str) -> dict[str, str]:
    out = {}
    for line in output.strip().splitlines():
        path, _, status = line.strip().partition(" ")
        if path.startswith("/"):
            out[path] = status
    return out
