"""argv of the health probes run inside containers (via the Engine's exec)."""

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


def http_probe(port: int, paths) -> list[str]:
    """One python process that GETs each path on localhost and prints `path status` lines."""
    code = (
        "import sys,urllib.request as u,urllib.error as e\n"
        "base=sys.argv[1]\n"
        "for p in sys.argv[2:]:\n"
        "    try: s=u.urlopen(base+p, timeout=3).status\n"
        "    except e.HTTPError as x: s=x.code\n"
        "    except Exception as x: s='error:'+type(x).__name__\n"
        "    print(p, s)\n"
    )
    return ["python3", "-c", code, f"http://127.0.0.1:{int(port)}", *paths]


def parse_http_probe(output: str) -> dict[str, str]:
    out = {}
    for line in output.strip().splitlines():
        path, _, status = line.strip().partition(" ")
        if path.startswith("/"):
            out[path] = status
    return out
