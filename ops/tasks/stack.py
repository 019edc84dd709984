"""Stack tasks: up, down, ps, logs, health, scale, build, clean, exec, config, on the
local Compose stack or (ps, logs, health, scale, exec, config) a Swarm environment."""

from __future__ import annotations

import json
import shlex
import sys

from invoke import Exit, task

from .. import config
from ..errors import OpsError
from ..facts.values import number_option, since_option
from ..text import table as table_rows
from .common import ENV_HELP, confirm, platform, user_errors

DAY = 86400

# The docker SDK, requests and tenacity are imported inside the tasks that use them:
# importing them up front would cost `inv --list` (and every other task) ~0.3 s.


@task(help={"build": "rebuild images before starting",
            "timeout": "seconds to wait for health (default: derived from the healthchecks)",
            "env": ENV_HELP})
@user_errors
def up(c, build=False, timeout=None, env="local"):
    """Start the stack and wait until every service is healthy."""
    wait = number_option(timeout, "--timeout", 1, DAY) if timeout is not None else None
    with platform(c, env) as p:
        took = p.up(build=build, timeout=wait)
        url = p.gateway_url()
    print(f"stack {p.stack_name!r} healthy in {took:.1f}s")
    if url:
        print(f"  gateway  {url}/\n  health   {url}/health")


@task(name="migrate",
      help={"allow_breaking": "run migrations squawk says break the running version or lock "
                              "a busy table (drop, rename, NOT NULL without a default, ...)",
            "json": "print JSON", "env": ENV_HELP})
@user_errors
def migrate(c, allow_breaking=False, json_=False, env="local"):
    """Apply the app's pending schema migrations (deploy.migrate), linted, after a restore point."""
    with platform(c, env) as p:
        result = p.migrate(allow_breaking=allow_breaking)
    if json_:
        print(json.dumps(result, indent=2))
    elif result["applied"]:
        print(f"applied {len(result['applied'])} migration(s)"
              + (f"; restore point {result['restore_point']}" if result["restore_point"] else ""))
    if result.get("maintenance") and not json_:
        print(f"maintenance mode {result['maintenance']}")


@task(help={"volumes": "also delete the data volumes (asks first unless --yes)",
            "yes": "do not ask for confirmation", "env": ENV_HELP})
@user_errors
def down(c, volumes=False, yes=False, env="local"):
    """Stop and remove the stack's containers and networks (data volumes are kept)."""
    with platform(c, env) as p:
        p.down(volumes=volumes, ask=lambda question: confirm(question, yes))


@task(help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def ps(c, json_=False, env="local"):
    """List the stack's containers (Compose) or services and tasks (Swarm) with state."""
    with platform(c, env) as p:
        listing = p.ps()
    if json_:
        print(json.dumps(listing.rows, indent=2))
        return
    if not listing.rows:
        print(listing.empty)
        return
    print("\n".join([*table_rows(listing.table), *listing.notes]))


@task(iterable=["service"],
      help={"service": "a service to show (repeatable; default: all; on Swarm `api` is "
                       "the live color, `api@blue` a given one)",
            "follow": "keep streaming", "tail": "lines from the end of each log",
            "since": "only since a time (e.g. 10m, 2026-01-01T10:00:00)",
            "timestamps": "prefix timestamps",
            "request": "only the lines of one request (its X-Request-ID), every service and "
                       "node, in time order",
            "grep": "only the lines containing this text, every service and node, in time order",
            "env": ENV_HELP})
@user_errors
def logs(c, service=None, follow=False, tail=None, since=None, timestamps=False, request=None,
         grep=None, env="local"):
    """Show service logs (or, with --request / --grep, the matching lines of all of them,
    merged in time order)."""
    if tail is not None and tail != "all":
        tail = str(number_option(tail, "--tail", 0, 10**7, integer=True))
    since = since_option(since)
    if request is not None or grep is not None:
        return _search_logs(c, env, service, request, grep, follow, tail, since)
    with platform(c, env) as p:
        p.logs(service or [], follow=follow, tail=tail, since=since, timestamps=timestamps)


def _search_logs(c, env, service, request, grep, follow, tail, since):
    from .. import logsearch

    if request is not None and grep is not None:
        raise OpsError("inv logs: give --request or --grep, not both")
    if follow:
        raise OpsError("inv logs: --request / --grep merge the logs in time order, which "
                       "--follow cannot; drop --follow")
    text = logsearch.needle(request if request is not None else grep,
                            "--request" if request is not None else "--grep")
    incomplete = None
    with platform(c, env) as p:
        try:
            found = p.search_logs(service or [], text, tail=tail, since=since)
        except logsearch.Incomplete as exc:  # what was found, then what is missing
            found, incomplete = exc.found, exc
    for e in found:
        print(e.render())
    if incomplete is not None:
        raise incomplete
    if not found:
        raise OpsError(f"no log line mentions {text!r}" + (f" since {since}" if since else "")
                       + (f" in the last {tail} line(s) of each container" if tail else ""))


@task(help={"json": "print JSON instead of a table",
            "wait": "retry for up to this many seconds until healthy", "env": ENV_HELP})
@user_errors
def health(c, json_=False, wait=None, env="local"):
    """Check every service at once; exit 0 only when all checks pass."""
    from .. import health as health_mod

    wait = number_option(wait, "--wait", 0, DAY) if wait is not None else None
    with platform(c, env) as p:
        once = p.health
        checks = once()
        if wait and not health_mod.healthy(checks):
            from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

            try:
                checks = Retrying(stop=stop_after_delay(wait), wait=wait_fixed(1),
                                  retry=retry_if_result(lambda r: not health_mod.healthy(r)))(once)
            except RetryError as exc:
                checks = exc.last_attempt.result()
    print(health_mod.render_json(checks) if json_ else health_mod.render_table(checks))
    if not health_mod.healthy(checks):
        raise Exit(code=1)


@task(help={"spec": "SERVICE=N, several joined by commas (api=3,worker=2)",
            "timeout": "seconds to wait for the new replicas' health", "json": "print JSON",
            "env": ENV_HELP})
@user_errors
def scale(c, spec, timeout=None, env="local", json_=False):
    """Scale stateless services and prove the gateway routes to every replica (on Swarm:
    `api` is the live color, and deploys keep the count)."""
    from ..scaling import parse_spec

    wait = number_option(timeout, "--timeout", 1, DAY) if timeout is not None else None
    parse_spec(spec)  # bad input is refused before anything connects
    with platform(c, env) as p:
        report = p.scale(spec, timeout=wait)
    if json_:
        print(json.dumps(report, indent=2, default=sorted))
        return
    for name, info in report.items():
        line = f"{name}: {info['replicas']} replica(s) healthy"
        if "answering" in info:
            line += f", {len(info['answering'])} answering through the gateway"
        print(line)


@task(iterable=["service"],
      help={"service": "a service to build (repeatable; default: all)",
            "no_cache": "build without the layer cache", "env": ENV_HELP})
@user_errors
def build(c, service=None, no_cache=False, env="local"):
    """Build the stack's images; the api is also tagged with the git commit (and semver)."""
    with platform(c, env) as p:
        tagged = p.build(service or [], no_cache=no_cache)
    for ref in tagged:
        print(f"tagged {ref}")


@task(help={"env": ENV_HELP})
@user_errors
def clean(c, env="local"):
    """Remove containers, networks and locally built images; data volumes are kept."""
    with platform(c, env) as p:
        p.clean()


EXEC_OPTIONS = {"-i": True, "--index": True, "-e": True, "--env": True, "-h": False,
                "--help": False}


def split_exec_command(argv: list[str]) -> str | None:
    """The one-line error for `inv exec api ls -la` (Invoke would read `-la` as its own
    flags: "Sub-collection '-a' not found"), or None when exec is not given a split
    command. The command is one argument: quoted, as a shell would."""
    try:
        rest = argv[argv.index("exec") + 1:]
    except ValueError:
        return None
    words, i = [], 0
    while i < len(rest):
        word = rest[i]
        name = word.split("=", 1)[0]
        if word == "--" or (word.startswith("-") and name not in EXEC_OPTIONS and len(words) >= 2):
            shown = [w for w in [*words[1:], *rest[i:]] if w != "--"]
            return ("inv exec: give the command as one quoted argument, e.g. "
                    f"`inv exec {words[0] if words else 'SERVICE'} {shlex.quote(shlex.join(shown))}`")
        if name in EXEC_OPTIONS:
            i += 2 if EXEC_OPTIONS[name] and "=" not in word else 1
            continue
        words.append(word)
        i += 1
    return None


@task(name="exec", help={"service": "service name (on Swarm: `api` is the live color, "
                                    "`api@blue` a given one)",
                         "command": "command line to run in it",
                         "index": "which replica (default 1)", "env": ENV_HELP})
@user_errors
def exec_(c, service, command, index=None, env="local"):
    """Run a command in a running service container (the command quoted as one argument:
    `inv exec api 'ls -la'`)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise OpsError(f"cannot parse command {command!r}: {exc}") from exc
    index = number_option(1 if index is None else index, "--index", 1, 1000, integer=True)
    if not argv:
        raise OpsError("nothing to run: give a command, e.g. `inv exec api 'ls -la'`")
    with platform(c, env) as p:
        code = p.exec(service, argv, index=index, tty=sys.stdin.isatty())
    if code:
        raise Exit(code=code)


@task(name="config", help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def show_config(c, json_=False, env="local"):
    """Show the resolved settings and where each came from (secrets masked); on a Swarm
    environment also its hosts, URL, registry, deploy settings and rendered stack."""
    with platform(c, env) as p:
        s, view = p.settings, p.config_view()
    values = config.masked(s.variables)
    variables = {k: {"value": values[k], "source": s.sources.get(k, "derived")} for k in sorted(values)}
    if json_:
        print(json.dumps({"env": s.env, **view.head, "variables": variables}, indent=2))
        return
    print("\n".join(view.lines))
    width = max(map(len, variables), default=0)
    for k, v in variables.items():
        print(f"  {k.ljust(width)}  {v['value']}    ({v['source']})")
    if view.after:
        print("\n".join(view.after))
