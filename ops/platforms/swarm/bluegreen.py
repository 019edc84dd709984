"""Blue-green deploy, rollback, finish and remove on a Swarm manager: commands come from
ops/commands/deploy.py, files from deploy/stackfile.py, verdicts from facts/rollout.py,
the stack's state and rollouts from deployment.py. One code path for every environment:
the manager is a runner (runtime.runner: over SSH, or this machine for local-swarm)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime

from ...commands import deploy as deploy_cmd
from ...deploy import records, stackfile
from ...deploy.lock import Terminated
from ...errors import OpsError
from ...facts import rollout, swarm_stack
from .deployment import (
    KEEP_RELEASES,
    Deployment,
    StepFailed,
    clock_and_upstream,
    create_secrets,
    gateway_container,
    live,
    manager_clock,
    prune_objects,
    record_desired,
    release_followers,
    scaled,
    service_state,
    wait_all,
    wait_converged,
    write_audit,
)

CONSECUTIVE = 5  # responses from the new color in a row before a switch counts as live


# -- reading state ----------------------------------------------------------------------


# -- waiting and probing ----------------------------------------------------------------


def probe(d: Deployment, gw: str, which: str, tag: str, replicas: int, timeout: float = 20) -> None:
    """Every task of the color, by address, over the overlay network, from the gateway."""
    deadline = time.monotonic() + timeout
    while True:
        text = d.target.run(deploy_cmd.probe(gw, d.svc(which)), f"probe {d.svc(which)}", check=False).stdout
        problem = rollout.judge_probe(rollout.parse_probe(text), replicas, tag, which)
        if problem is None:
            return
        if time.monotonic() > deadline:
            down = f" (node {', '.join(sorted(d.nodes_lost.values()))} down)" if d.nodes_lost else ""
            raise OpsError(f"{d.svc(which)} over the overlay network: {problem}{down}")
        time.sleep(1)


def fetch_identity(d: Deployment, gw: str) -> rollout.Identity:
    """Who answers one fresh request through the gateway, on the verification path: the
    health passthrough, never rate-limited, so a load test or a shared NAT on the
    deployer's address cannot make a good switch look like a wrong color."""
    if d.url:
        import requests

        try:
            r = requests.get(d.url + deploy_cmd.VERIFY_PATH, timeout=3, headers={"Connection": "close"},
                             verify=d.trust)
            return rollout.Identity(r.status_code, r.headers.get("X-App-Color", ""),
                                     r.headers.get("X-App-Version", ""))
        except requests.RequestException as exc:
            return rollout.Identity(0, error=type(exc).__name__)
    fetch = deploy_cmd.fetch_through_gateway(gw, path=deploy_cmd.VERIFY_PATH)
    headers = rollout.parse_headers(d.target.run(fetch, "request via the gateway", check=False).stdout)
    status = headers.get(":status", "")
    return rollout.Identity(int(status) if status.isdigit() else 0,
                             headers.get("x-app-color", ""), headers.get("x-app-version", ""))


def verify_live(d: Deployment, gw: str, which: str, tag: str, timeout: float = 15) -> float:
    """Seconds from now to the first response from the new color; then CONSECUTIVE in a
    row must come from it (a reload's exit 0 does not prove the new config serves).
    A 429 proves nothing either way: it neither counts nor breaks the streak."""
    start = time.monotonic()
    first, streak, last = None, 0, rollout.Identity(0)
    while time.monotonic() - start < timeout:
        answer = fetch_identity(d, gw)
        verdict = rollout.judge_identity(answer, which, tag)
        if verdict == "ok":
            first = first if first is not None else time.monotonic() - start
            streak += 1
            if streak >= CONSECUTIVE:
                return first
            continue
        last = answer
        if verdict != "limited":
            streak = 0
        time.sleep(0.05)
    raise OpsError(f"the gateway does not serve {which}/{tag} after {timeout:.0f}s "
                   f"(last answer: {last.describe()})")


def point_gateway(d: Deployment, gw: str, text: str | None, what: str, path: str | None = None,
                  audit: dict | None = None) -> None:
    """Write the upstream (or `path` of the live directory; `text` None removes it),
    nginx -t, reload, and append `audit` to the log, in one round trip that a cut
    connection cannot stop half-way; a refused config is said with nginx's own words (and
    nothing was reloaded)."""
    entry = (d.paths.audit, records.line(audit)) if audit else None
    r = d.target.run(deploy_cmd.switch_upstream(path or d.paths.upstream, text, gw, entry), what,
                     check=False)
    if r.returncode == deploy_cmd.SWITCH_REFUSED:
        raise OpsError(f"nginx -t rejected the new upstream: {r.stdout.strip()[-300:]}")
    if r.returncode != 0:
        from ...runtime.runner import failure

        step = {deploy_cmd.SWITCH_NOT_WRITTEN: "writing the upstream",
                deploy_cmd.SWITCH_NOT_RELOADED: "nginx -s reload"}.get(r.returncode, what)
        raise OpsError(f"{d.target.name}: {step} failed {failure(r, d.target.local)}")


def set_maintenance(d: Deployment, on: bool, message: str | None = None, retry_after: int = 300,
                    why: str | None = None) -> None:
    """The gateway's maintenance page on or off: its file in the live directory on the
    manager, nginx -t, reload (requests in flight finish on the old workers), proven
    through the public URL, audited."""
    from ... import maintenance
    from ...commands.line import cmd
    from ...routing import wait_maintenance

    gw = gateway_container(d)
    text = maintenance.conf(message, retry_after, datetime.now(UTC)) if on else None
    try:
        point_gateway(d, gw, text, f"maintenance {'on' if on else 'off'}", path=d.paths.maintenance)
    except OpsError:
        if on:  # never leave a file the next reload would trip on
            d.target.run(cmd("rm", "-f", d.paths.maintenance), "remove the maintenance file", check=False)
        raise
    if d.url:
        wait_maintenance(d.url, on, d.trust)
    write_audit(d, records.record("maintenance", d.env, "ok", state="on" if on else "off", why=why))


def switch(d: Deployment, gw: str, which: str, tag: str, previous_text: str, port: int) -> float:
    """Point the gateway at `which`; prove it; on any failure put the previous upstream
    back (and prove that). Returns the switch time in seconds (from the command that
    writes, tests and reloads to the first response from the new color)."""
    before = swarm_stack.parse_upstream(previous_text)
    try:
        start = time.monotonic()
        # The manager records the switch itself, once reloaded: the log says what the
        # gateway serves even when this process or its connection dies right after.
        point_gateway(d, gw, stackfile.upstream(d.app, which, tag, port), "switch the upstream",
                      audit=_switch_record(d, before, (which, tag)))
        return (time.monotonic() - start) + verify_live(d, gw, which, tag)
    except BaseException as exc:  # also Ctrl-C and SIGTERM: never leave it unproven
        if previous_text:
            d.say(f"switch failed ({exc or type(exc).__name__}); switching back")
            back = swarm_stack.parse_upstream(previous_text)
            point_gateway(d, gw, previous_text, "restore the upstream",
                          audit=_switch_record(d, (which, tag), back, why="switched back"))
            if back:
                verify_live(d, gw, *back)
                d.say(f"switched back: {back[0]}/{back[1]} is serving")
        raise


def _switch_record(d: Deployment, frm: tuple[str, str] | None, to: tuple[str, str] | None,
                   why: str | None = None) -> dict:
    return records.record("switch", d.env, "ok", from_color=frm[0] if frm else None,
                          from_tag=frm[1] if frm else None, to_color=to[0] if to else None,
                          to_tag=to[1] if to else None, why=why)


# -- the actions ------------------------------------------------------------------------


OUT_OF_SEQUENCE = "update out of sequence"


def stack_deploy(d: Deployment, line, what: str, check: bool = True, tries: int = 4):
    """`docker stack deploy`, again when Swarm answers "update out of sequence": a service
    written meanwhile (the worker still rolling back after the last rollback) made the
    CLI's read of its spec stale; a new read a moment later goes through."""
    for attempt in range(tries):
        r = d.target.run(line, what, check=False)
        if r.returncode == 0 or OUT_OF_SEQUENCE not in (r.stderr + r.stdout) or attempt == tries - 1:
            break
        time.sleep(1.0 + attempt)
    if check and r.returncode != 0:
        from ...runtime.runner import failure

        raise OpsError(f"{d.target.name}: {what} failed {failure(r, d.target.local)}")
    return r


def _has_detach(d: Deployment) -> bool:
    found = d.target.run(deploy_cmd.stack_deploy_has_detach(), "docker version check", check=False)
    return found.returncode == 0


def _resolve(d: Deployment) -> tuple[str, bool]:
    """How a color's stack is deployed: a registry's image pinned by digest (with the
    manager's login forwarded to the workers), or the image the nodes were sent."""
    return ("never", False) if d.registry_auth is None else ("always", d.registry_auth)


def _prepare_release(d: Deployment, plan: stackfile.Plan, which: str, tag: str,
                     counts: dict[str, int]) -> tuple[str, set[str]]:
    """Upload the release and create its secrets; returns its directory and the names of
    the Swarm secrets and configs it uses."""
    secrets, configs = plan.names()
    release = new_release(d, tag)
    previous = d.target.run(deploy_cmd.newest_release(d.paths), "find the last release").stdout.strip()
    previous_base = d.target.run(deploy_cmd.read_file(f"{previous}/base.json"),
                                 "read the last base").stdout if previous else ""
    present = create_secrets(d, plan)
    # The servers keep the secret versions they were created with (a changed reference
    # would restart a database for a value it reads only at initialisation).
    d.pins = stackfile.server_pins(previous_base, plan.t, present)
    files = plan.files(which, tag, counts, pins=d.pins)
    d.base_changed = not previous or previous_base != files["base.json"]
    d.target.put(release, files, "upload the release")
    return release, {*secrets.values(), *configs.values(), *(n for p in d.pins.values() for n in p.values())}


def new_release(d: Deployment, tag: str) -> str:
    return d.paths.release(f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{tag}")


def roll_idle(d: Deployment, plan: stackfile.Plan, which: str, tag: str, replicas: int) -> str:
    """The idle color onto `plan`'s secrets and configs at `tag` (a rotation: the rollback
    target keeps its version), as a release of its own so that a rollback to `tag` finds
    followers that name the current secret versions. It serves nobody: no switch."""
    release = new_release(d, tag)
    files = plan.files(which, tag, {**scaled(d), deploy_cmd.APP_SERVICE: replicas}, pins=d.pins)
    d.target.put(release, files, "upload the release")
    since = manager_clock(d)
    stack_deploy(d, deploy_cmd.stack_deploy(f"{release}/{which}.json", d.app, False, *_resolve(d)),
                 f"docker stack deploy ({which})")
    if replicas:
        wait_all(d, [(which, plan.rel.app_ref(tag), replicas)], since)
    return release


def deploy_followers(d: Deployment, release: str, since: str, detach_flag: bool,
                     images: dict[str, str], wait: bool = True,
                     timeout: float | None = None) -> None:
    """The services running the app's image (a worker), rolled out from the release's
    followers file ({service: image}); `wait=False`: handed to Swarm, not waited for;
    `timeout`: seconds to wait (default the deploy's converge_timeout)."""
    stack_deploy(d, deploy_cmd.stack_deploy(f"{release}/followers.json", d.app, detach_flag and wait,
                                  *_resolve(d)),
                 "docker stack deploy (followers)", check=not (detach_flag and wait))
    if not wait:
        return
    for name, image in images.items():
        service, _ = service_state(d, name)
        wait_converged(d, name, image, service.replicas if service else 1, since, timeout=timeout)


def follow_back(d: Deployment, tag: str, since: str, wait: float | None) -> str:
    """After a rollback to `tag`: its release's followers, if it had any, waited for up
    to `wait` seconds (None: rolled in the background). Returns what was done, for the
    record: none, done, background (Swarm rolls them), or unknown."""
    release, images = release_followers(d, tag)
    if not release:
        d.say(f"warning: no release of {tag} is kept on the manager: services that follow the "
              "app's image (if any) stay as they are")
        return "unknown"
    if not images:
        return "none"
    waiting = wait is not None
    deploy_followers(d, release, since, waiting and _has_detach(d), images, wait=waiting,
                     timeout=wait or None)
    if not waiting:
        d.say(f"{', '.join(images)} rolling back to {tag} in the background: "
              f"`inv deploy.status --env {d.env}` shows when it is done")
    return "done" if waiting else "background"


def deploy(d: Deployment, plan: stackfile.Plan, tag: str, deliver: Callable[[], None],
           detach_flag: bool | None = None, hold_lock: bool = True,
           migrate: Callable[[str], dict] | None = None,
           pre_switch: Callable[[str], None] | None = None) -> dict:
    """Deploy `tag` to the idle color, gate on health, switch, verify. The live color is
    never touched: any failure before the switch leaves it serving; a failed switch is
    switched back. `hold_lock=False`: the caller holds the deploy lock (a rotation).
    `migrate(tag)`: the schema migrations, run once the databases are up and before the
    idle color starts (ops/migrations); their failure stops the deploy there.
    `pre_switch(color)`: the pre-switch hook, once the idle color is probed; its failure
    stops the deploy like a failed probe (the idle color scaled down)."""
    deploy_cmd.check_tag(tag)
    started = time.monotonic()
    rec: dict = {"to_tag": tag}
    # The failure path runs under the lock too: nothing else may start on the cluster
    # before the failed color is stopped and the worker put back.
    with d.lock(tag) if hold_lock else nullcontext():
        try:
            with d.stage("state"):
                since, previous_text = clock_and_upstream(d)
                current = swarm_stack.parse_upstream(previous_text)
                which = deploy_cmd.other(current[0]) if current else "blue"
                rec.update(from_color=current[0] if current else None,
                           from_tag=current[1] if current else None, to_color=which)
                counts = scaled(d)
                replicas = stackfile.color_count(counts, plan.rel.replicas)
                if counts:
                    d.say("replicas set by `inv scale`, kept: "
                          + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
                if detach_flag is None:
                    detach_flag = _has_detach(d)
                d.say(f"deploying {tag} to {d.svc(which)} (live: "
                      f"{f'{current[0]}/{current[1]}' if current else 'nothing yet'})")
            with d.stage("images"):
                deliver()
                # Tasks that failed for want of the images just delivered (a node that
                # came back empty) are not this rollout's failures.
                since = manager_clock(d)
            with d.stage("upload"):
                release, objects = _prepare_release(d, plan, which, tag, counts)
                if not current:  # first deploy: the gateway needs an upstream to start
                    d.target.run(deploy_cmd.write_file(d.paths.upstream, stackfile.upstream(
                        d.app, which, tag, plan.t.http_port())), "write the first upstream")
            with d.stage("base"):
                # Unchanged since the last release: the CLI's own wait (~5 s per service)
                # would prove nothing new; wait_converged below checks the tasks.
                d.target.run(deploy_cmd.stack_deploy(f"{release}/base.json", d.app,
                                              detach_flag and d.base_changed),
                             "docker stack deploy (base)")
                if stackfile.base_waits(plan.t):
                    wait_all(d, stackfile.base_waits(plan.t), since)
            if migrate is not None:
                with d.stage("migrate"):
                    try:
                        rec["migrations"] = migrate(tag)
                    except OpsError as exc:
                        serving = f"{current[0]}/{current[1]} keeps serving" if current else "none was live"
                        raise OpsError(f"{exc}; {serving}") from None
            with d.stage(f"deploy {which}"):
                # The idle color and the services that follow the app's image (the worker)
                # roll out together, and both are gated before the switch: a worker that
                # cannot start fails the deploy before any user is moved. The CLI's own
                # wait is not used: wait_all watches both in one loop.
                app = plan.rel.app_ref(tag)
                stack_deploy(d, deploy_cmd.stack_deploy(f"{release}/{which}.json", d.app, False,
                                                        *_resolve(d)), f"docker stack deploy ({which})")
                rollouts = [(which, app, replicas)]
                if plan.t.followers():
                    rec["followers_moved"] = True
                    stack_deploy(d, deploy_cmd.stack_deploy(f"{release}/followers.json", d.app, False,
                                                  *_resolve(d)), "docker stack deploy (followers)")
                    rollouts += [(name, app, None) for name in plan.t.followers()]
                wait_all(d, rollouts, since)
            gw = gateway_container(d)
            with d.stage("probe"):
                probe(d, gw, which, tag, replicas)
            if pre_switch is not None:
                with d.stage("pre-switch"):
                    pre_switch(which)
            with d.stage("switch"):
                rec["switch_seconds"] = round(switch(d, gw, which, tag, previous_text,
                                                     plan.t.http_port()), 3)
            d.target.run(deploy_cmd.prune_releases(d.paths.releases, KEEP_RELEASES), "prune releases",
                         check=False)
            prune_objects(d, objects)
            record_desired(d)
            if d.nodes_lost:
                rec["nodes_down"] = sorted(d.nodes_lost.values())
                d.say(f"warning: deployed without node {', '.join(rec['nodes_down'])} (down): "
                      f"`inv health --env {d.env}` shows the cluster")
            rec.pop("followers_moved", None)
            rec["seconds"] = round(time.monotonic() - started, 2)
            write_audit(d, records.record("deploy", d.env, "ok", **rec))
        except BaseException as exc:
            _after_failure(d, rec, exc, started, "deploy")
            raise
    rec["timings"] = d.timings
    return rec


def _after_failure(d: Deployment, rec: dict, exc: BaseException, started: float,
                   action: str) -> None:
    """Audit a failed or interrupted action that held the lock (a refused one did not)."""
    if not rec.get("to_color"):
        return
    step = exc.step if isinstance(exc, StepFailed) else d.step
    interrupted = isinstance(exc, KeyboardInterrupt | Terminated) or getattr(exc, "code", 0) == 143
    # A failed (or interrupted, half-rolled-out) idle color would restart forever and
    # leave a broken rollback target: stop it (it serves nobody).
    if action == "deploy" and (isinstance(exc, StepFailed) or interrupted) and (
            step.startswith("deploy ") or step in ("probe", "pre-switch")):
        d.target.run(deploy_cmd.service_scale(d.svc(rec["to_color"]), 0), "scale the failed color down",
                     check=False)
    if action == "deploy" and rec.pop("followers_moved", False) and rec.get("from_tag") \
            and "switch_seconds" not in rec:
        # The worker went with the idle color: it goes back with the live one, waited
        # for under the lock (a deploy started right after would race its update: Swarm
        # refuses it, "update out of sequence").
        try:
            d.say(f"followers rolling back to {rec['from_tag']} (waited for, under the lock) ...")
            done = follow_back(d, rec["from_tag"], "", wait=min(d.converge_timeout, 120))
            d.say(f"followers back on {rec['from_tag']}" if done == "done" else
                  f"followers: {done}")
        except Exception as back_exc:  # noqa: BLE001 - the original failure is what matters
            d.say(f"warning: the services that follow the app's image stay on the new tag: "
                  f"{back_exc}")
    if d.nodes_lost:
        rec["nodes_down"] = sorted(d.nodes_lost.values())
    detail = exc.detail if isinstance(exc, StepFailed) else (str(exc) or type(exc).__name__)
    rec.update(step=step, error=detail[:500], seconds=round(time.monotonic() - started, 1))
    try:
        write_audit(d, records.record(action, d.env, "interrupted" if interrupted else "failed", **rec))
    except Exception as audit_exc:  # noqa: BLE001 - the original failure is what matters
        d.say(f"warning: could not write the audit record: {audit_exc}")


def rollback(d: Deployment, wait_followers: float | None = None) -> dict:
    """Switch back to the other color, after checking it is healthy (scaling it back up
    first if `deploy.finish` had scaled it down). The services that follow the app's
    image roll back after the switch, in the background unless `wait_followers` (up to
    that many seconds): the users are served by the old version from the verified
    switch on."""
    started = time.monotonic()
    rec: dict = {}
    # The failure path runs under the lock too: nothing else may start on the cluster
    # before the failed color is stopped and the worker put back.
    with d.lock("rollback"):
        try:
            with d.stage("state"):
                since, previous_text = clock_and_upstream(d)
                current = swarm_stack.parse_upstream(previous_text)
                if not current:
                    raise OpsError("nothing is deployed: no live color")
                which = deploy_cmd.other(current[0])
                service, tasks = service_state(d, which)
                if service is None:
                    raise OpsError(f"{d.svc(which)} does not exist: nothing to roll back to")
                rec.update(from_color=current[0], from_tag=current[1], to_color=which,
                           to_tag=service.tag)
            with d.stage("health"):
                count = service.replicas
                if count == 0:
                    count = stackfile.color_count(scaled(d), d.replicas)
                    d.say(f"{d.svc(which)} is scaled down: scaling it to {count} first")
                    d.target.run(deploy_cmd.service_scale(d.svc(which), count), "scale up")
                    wait_converged(d, which, service.image, count, since)
                elif rollout.assess(service, tasks, service.image, count, since).state != "done":
                    wait_converged(d, which, service.image, count, since, timeout=10)
                gw = gateway_container(d)
                probe(d, gw, which, service.tag, count)
            with d.stage("switch"):
                port = stackfile.upstream_port(previous_text) or deploy_cmd.DEFAULT_HTTP_PORT
                rec["switch_seconds"] = round(switch(d, gw, which, service.tag, previous_text,
                                                     port), 3)
            rec["verified_seconds"] = round(time.monotonic() - started, 2)
            with d.stage("followers"):
                rec["followers"] = follow_back(d, service.tag, since, wait_followers)
            record_desired(d)
            rec["seconds"] = round(time.monotonic() - started, 2)
            write_audit(d, records.record("rollback", d.env, "ok", **rec))
        except BaseException as exc:
            _after_failure(d, rec, exc, started, "rollback")
            raise
    rec["timings"] = d.timings
    return rec


def finish(d: Deployment) -> dict:
    """Scale the idle (previous) color to zero: the end of the instant-rollback window."""
    with d.lock("finish"):
        current = live(d)
        if not current:
            raise OpsError("nothing is deployed: no live color")
        which = deploy_cmd.other(current[0])
        service, _ = service_state(d, which)
        if service is None or service.replicas == 0:
            return {"idle": which, "changed": False}
        d.target.run(deploy_cmd.service_scale(d.svc(which), 0), f"scale {d.svc(which)} to 0")
        record_desired(d)
        write_audit(d, records.record("finish", d.env, "ok", idle_color=which, idle_tag=service.tag))
        return {"idle": which, "changed": True, "tag": service.tag}


def remove(d: Deployment, volumes: bool = False, timeout: float = 90) -> list[str]:
    """Remove the whole stack (both colors, gateway, database, redis), its secrets and
    the live upstream; with `volumes`, the data volumes too. The audit log stays."""
    removed = []
    with d.lock("remove"):
        d.target.run(deploy_cmd.stack_rm(d.app), "docker stack rm")
        deadline = time.monotonic() + timeout
        while d.target.run(deploy_cmd.stack_leftovers(d.app), "stack leftovers").stdout.strip():
            if time.monotonic() > deadline:
                raise OpsError(f"stack {d.app} still has services or networks after {timeout:.0f}s")
            time.sleep(1)
        removed.append(f"stack {d.app}")
        d.target.run(deploy_cmd.secrets_rm(d.app), "remove secrets")
        removed.append("secrets")
        if volumes:
            d.target.run(deploy_cmd.volumes_rm(d.app), "remove volumes")
            removed.append("volumes")
        d.target.run(deploy_cmd.state_rm(d.paths), "remove the live upstream and releases")
        write_audit(d, records.record("remove", d.env, "ok", volumes=volumes))
    return removed
