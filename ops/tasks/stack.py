"""Stack tasks: up, down, ps, logs, health, scale, build, clean, exec, config, on the
local Compose stack or (ps, logs, health, scale, exec, config) a Swarm environment."""

from __future__ import annotations

import json
import shlex
import sys

from invoke import Exit, task

from .. import config
from ..environment import COMPOSE, SWARM
from ..errors import OpsError
from ..facts.values import number_option, since_option
from .common import ENV_HELP, confirm, target, user_errors

DAY = 86400

# The docker SDK, requests and tenacity are imported inside the tasks that use them:
# importing them up front would cost `inv --list` (and every other task) ~0.3 s.


def _stack(c, env, task):
    from ..stack import Stack

    s, _ = target(c, env, task, {COMPOSE})
    return Stack(s)


def _either(c, env, task):
    """(Stack, None) on the Compose stack, (None, Cluster) on a Swarm environment."""
    s, where = target(c, env, task, {COMPOSE, SWARM})
    if where.kind == COMPOSE:
        from ..stack import Stack

        return Stack(s), None
    from ..cluster import Cluster
    from ..deploy.session import Session

    return None, Cluster(Session(s, where, c.config))


def _close(cluster) -> None:
    if cluster is not None:
        cluster.close()


@task(help={"build": "rebuild images before starting",
            "timeout": "seconds to wait for health (default: derived from the healthchecks)",
            "env": ENV_HELP})
@user_errors
def up(c, build=False, timeout=None, env="local"):
    """Start the stack and wait until every service is healthy."""
    stack = _stack(c, env, "up")
    wait = number_option(timeout, "--timeout", 1, DAY) if timeout is not None else None
    took = stack.up(build=build, timeout=wait)
    print(f"stack {stack.settings.project!r} healthy in {took:.1f}s")
    url = stack.gateway_url()
    if url:
        print(f"  gateway  {url}/\n  health   {url}/health")


@task(help={"volumes": "also delete the data volumes (asks first unless --yes)",
            "yes": "do not ask for confirmation", "env": ENV_HELP})
@user_errors
def down(c, volumes=False, yes=False, env="local"):
    """Stop and remove the stack's containers and networks (data volumes are kept)."""
    stack = _stack(c, env, "down")
    if volumes:
        confirm(f"Delete ALL data volumes of project {stack.settings.project!r}?", yes)
    stack.down(volumes=volumes)


@task(help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def ps(c, json_=False, env="local"):
    """List the stack's containers (Compose) or services and tasks (Swarm) with state."""
    stack, cluster = _either(c, env, "ps")
    if cluster is not None:
        return _ps_swarm(cluster, json_)
    containers = stack.containers()
    if json_:
        print(json.dumps([vars(x) | {"ok": x.ok} for x in containers], indent=2))
        return
    if not containers:
        print("no containers (stack is down)")
        return
    rows = [("SERVICE", "CONTAINER", "STATE", "HEALTH")]
    rows += [(x.service, x.name, x.state + (f" ({x.exit_code})" if x.state == "exited" else ""),
              x.health or "-") for x in containers]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)).rstrip())


def _ps_swarm(cluster, json_: bool) -> None:
    from ..facts.swarm_stack import ps_rows

    try:
        snap = cluster.snapshot()
    finally:
        _close(cluster)
    rows = ps_rows(snap, snap.live_color)
    if json_:
        print(json.dumps(rows, indent=2))
        return
    table = [("SERVICE", "REPLICAS", "TAG", "NODES")]
    for r in rows:
        desired = "global" if r["desired"] is None else r["desired"]
        table.append((r["service"] + (" (live)" if r["live"] else ""), f"{r['running']}/{desired}",
                      r["tag"], ", ".join(sorted({t["node"] for t in r["tasks"]})) or "-"))
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    for t in table:
        print("  ".join(t[i].ljust(widths[i]) for i in range(4)).rstrip())
    for r in rows:
        for t in r["not_running"]:
            print(f"  ! {r['service']}.{t['slot']} on {t['node']}: {t['state']}"
                  + (f": {t['error']}" if t["error"] else ""))


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
    stack, cluster = _either(c, env, "logs")
    if cluster is None:
        stack.logs(service or [], follow=follow, tail=tail, since=since, timestamps=timestamps)
        return
    try:
        cluster.logs(service or [], follow=follow, tail=tail, since=since, timestamps=timestamps)
    finally:
        _close(cluster)


def _search_logs(c, env, service, request, grep, follow, tail, since):
    from .. import logsearch

    if request is not None and grep is not None:
        raise OpsError("inv logs: give --request or --grep, not both")
    if follow:
        raise OpsError("inv logs: --request / --grep merge the logs in time order, which "
                       "--follow cannot; drop --follow")
    text = logsearch.needle(request if request is not None else grep,
                            "--request" if request is not None else "--grep")
    stack, cluster = _either(c, env, "logs")
    incomplete = None
    try:
        found = (stack or cluster).search_logs(service or [], text, tail=tail, since=since)
    except logsearch.Incomplete as exc:  # what was found, then what is missing
        found, incomplete = exc.found, exc
    finally:
        _close(cluster)
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
    stack, cluster = _either(c, env, "health")
    if cluster is None:
        model, url, project = stack.model, stack.gateway_url(), stack.settings.project

        def once():
            return health_mod.run_checks(model, project, url, stack.gateway_trust)
    else:
        once = cluster.health
    try:
        checks = once()
        if wait and not health_mod.healthy(checks):
            from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

            try:
                checks = Retrying(stop=stop_after_delay(wait), wait=wait_fixed(1),
                                  retry=retry_if_result(lambda r: not health_mod.healthy(r)))(once)
            except RetryError as exc:
                checks = exc.last_attempt.result()
    finally:
        _close(cluster)
    print(health_mod.render_json(checks) if json_ else health_mod.render_table(checks))
    if not health_mod.healthy(checks):
        raise Exit(code=1)


@task(help={"spec": "SERVICE=N, several joined by commas (api=3,worker=2)",
            "timeout": "seconds to wait for the new replicas' health", "env": ENV_HELP})
@user_errors
def scale(c, spec, timeout=None, env="local"):
    """Scale stateless services and prove the gateway routes to every replica (on Swarm:
    `api` is the live color, and deploys keep the count)."""
    from ..scaling import parse_spec

    wait = number_option(timeout, "--timeout", 1, DAY) if timeout is not None else None
    parse_spec(spec)  # bad input is refused before anything connects
    stack, cluster = _either(c, env, "scale")
    try:
        report = (stack or cluster).scale(spec, timeout=wait)
    finally:
        _close(cluster)
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
    stack = _stack(c, env, "build")
    stack.build(service or [], no_cache=no_cache)
    if not service or "api" in service:
        for ref in stack.build_release():
            print(f"tagged {ref}")


@task(help={"env": ENV_HELP})
@user_errors
def clean(c, env="local"):
    """Remove containers, networks and locally built images; data volumes are kept."""
    _stack(c, env, "clean").clean()


@task(name="exec", help={"service": "service name (on Swarm: `api` is the live color, "
                                    "`api@blue` a given one)",
                         "command": "command line to run in it",
                         "index": "which replica (default 1)", "env": ENV_HELP})
@user_errors
def exec_(c, service, command, index=None, env="local"):
    """Run a command in a running service container."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise OpsError(f"cannot parse command {command!r}: {exc}") from exc
    index = number_option(1 if index is None else index, "--index", 1, 1000, integer=True)
    if not argv:
        raise OpsError("nothing to run: give a command, e.g. `inv exec api 'ls -la'`")
    stack, cluster = _either(c, env, "exec")
    try:
        code = (stack or cluster).exec(service, argv, index=index, tty=sys.stdin.isatty())
    finally:
        _close(cluster)
    if code:
        raise Exit(code=code)


def _swarm_config(s, where, cfg) -> dict:
    """What `inv config` shows of a Swarm environment, without connecting to it."""
    from ..deploy import stackfile
    from ..deploy.session import Session

    session = Session(s, where, cfg, connect=False)
    d, inv = session.d, session.inv
    plan = session.plan(values=False)
    secrets, configs = plan.names()
    t = plan.t
    stack = {"base": stackfile.base(t, secrets, configs),
             "blue": stackfile.color(t, plan.rel, "blue", "<tag>", secrets, configs),
             "followers": stackfile.followers(t, plan.rel, "<tag>", secrets, configs),
             "notes": t.notes}
    return {"app": d.app, "url": d.url,
            "registry": session.registry.server if session.registry else None,
            "hosts": [{"name": h.name, "role": h.role, "user": h.user, "address": h.address,
                       "port": h.port} for h in (inv.hosts if inv else [])],
            "deploy": session.opts,
            "stack": stack}


@task(name="config", help={"json": "print JSON", "env": ENV_HELP})
@user_errors
def show_config(c, json_=False, env="local"):
    """Show the resolved settings and where each came from (secrets masked); on a Swarm
    environment also its hosts, URL, registry, deploy settings and rendered stack."""
    s, where = target(c, env, "config", {COMPOSE, SWARM})
    values = config.masked(s.variables)
    variables = {k: {"value": values[k], "source": s.sources.get(k, "derived")} for k in sorted(values)}
    swarm = _swarm_config(s, where, c.config) if where.kind == SWARM else None
    if json_:
        head = ({"kind": "swarm", **swarm} if swarm else
                {"kind": "compose", "project": s.project,
                 "compose_files": [str(f) for f in s.compose_files]})
        print(json.dumps({"env": s.env, **head, "variables": variables}, indent=2))
        return
    if swarm:
        print(f"env       {s.env} (Swarm{'' if where.over_ssh else ' on this engine'})")
        print(f"app       {swarm['app']}\nurl       {swarm['url'] or '-'}")
        print(f"registry  {swarm['registry'] or '- (images over SSH)'}")
        for h in swarm["hosts"]:
            print(f"host      {h['name']} {h['role']} {h['user']}@{h['address']}:{h['port']}")
        print("deploy    " + " ".join(f"{k}={v}" for k, v in swarm["deploy"].items()))
    else:
        print(f"env       {s.env}\nproject   {s.project}")
        print("compose   " + ", ".join(str(f.relative_to(s.root)) for f in s.compose_files))
    width = max(map(len, variables), default=0)
    for k, v in variables.items():
        print(f"  {k.ljust(width)}  {v['value']}    ({v['source']})")
    if swarm:
        stack = swarm["stack"]
        print("stack, rendered from the compose files (secret versions masked; green is blue's "
              "twin):")
        files = {k: stack[k] for k in ("base", "blue", "followers") if stack[k]}
        print(json.dumps(files, indent=2, sort_keys=True))
        print("translated for Swarm:" if stack["notes"] else "translated for Swarm: nothing to note")
        for note in stack["notes"]:
            print(f"  - {note}")
