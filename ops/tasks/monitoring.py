"""monitoring.up / down / status / alerts: Prometheus, Alertmanager and the exporters."""

from __future__ import annotations

import json
from contextlib import contextmanager

from invoke import Collection, Exit, task

from ..errors import OpsError
from ..facts.values import number_option
from .common import ENV_HELP, platform, user_errors

DAY = 86400


@contextmanager
def _opened(c, env):
    """The monitoring of --env's platform (ops.platforms.base.Monitoring): the Compose
    profile locally, the stack's monitoring part on a Swarm environment."""
    from ..monitoring import settings

    with platform(c, env) as p:
        mon = p.monitoring(settings.load(c.config.get("monitoring", {}), p.settings.variables))
        try:
            yield mon
        finally:
            mon.close()


UIS = (("prometheus", 9090), ("alertmanager", 9093))


def _uis(mon) -> list[tuple[str, str]]:
    uis = [(name, mon.url(name, port) + "/") for name, port in UIS]
    if mon.grafana:
        uis.append(("grafana", mon.url("grafana", 3000) + "/  (user admin, GRAFANA_ADMIN_PASSWORD)"))
    return uis


@task(help={"timeout": "seconds to wait for every monitoring service's health (default 120)",
            "env": ENV_HELP})
@user_errors
def up(c, timeout=None, env="local"):
    """Start Prometheus, Alertmanager and the exporters (the `monitoring` profile
    locally, the stack's monitoring part on a Swarm environment), with the alert rules
    rendered from invoke.yaml's `monitoring:` thresholds."""
    wait = number_option(timeout, "--timeout", 1, DAY) if timeout is not None else 120
    from ..monitoring import health
    from ..monitoring import status as parse

    with _opened(c, env) as mon:
        started = mon.up(timeout=wait)
        print(f"monitoring up: {', '.join(started)}", flush=True)
        if not mon.tunnelled:
            for name, url in _uis(mon):
                print(f"  {name:13} {url}")
        else:
            print(f"  the UIs: `inv monitoring.open --env {env}`")
        if not mon.m.webhook_url:
            print("  no ALERT_WEBHOOK_URL or BACKUP_WEBHOOK_URL: alerts are kept, not sent")
        # What it sees, once each target has been found (DNS refreshes every 15 s; a
        # node-exporter on another node may still be starting) and scraped: up to the
        # same --timeout again, at least three scrape intervals.
        ok, detail = mon.settle(timeout=max(wait, 3 * mon.m.scrape_interval))
        if not ok:
            raise OpsError(f"monitoring started on --env {env}, but not every target is up: "
                           f"{detail} (`inv monitoring.status --env {env}`)")
        print(f"  targets: {detail}")
        print(f"  alerts: {_alerts_line(mon, health, parse)}")


def _alerts_line(mon, health, parse, attempts: int = 5) -> str:
    """What fires now, for up's last line: informative, so an Alertmanager not answering
    yet (just started, or a task replaced since its address was read) is said, and does
    not fail the start."""
    import time

    for attempt in range(attempts):
        if attempt:
            getattr(mon, "close_tunnels", lambda: None)()  # look its address up again
            time.sleep(2)
        try:
            return health.alerts_verdict(parse.alerts(mon.alerts()))[2]
        except OpsError as exc:
            last = exc
    return f"not read yet ({last}); `inv monitoring.alerts`"


@task(help={"env": ENV_HELP})
@user_errors
def down(c, env="local"):
    """Stop and remove the monitoring services (their data volumes stay)."""
    with _opened(c, env) as mon:
        stopped = mon.down()
    print(f"monitoring down: {', '.join(stopped) or 'nothing was running'}")


@task(help={"json_": "machine-readable output", "env": ENV_HELP})
@user_errors
def status(c, json_=False, env="local"):
    """Every scrape target and its health; exit 1 if any is down."""
    from ..monitoring import status as parse

    with _opened(c, env) as mon:
        rows = parse.with_missing(parse.targets(mon.targets()), mon.jobs())
    if json_:
        print(json.dumps([vars(r) | {"ok": r.ok} for r in rows], indent=2))
    else:
        width = max([len(r.job) for r in rows] + [3])
        for r in rows:
            print(f"{'ok' if r.ok else r.health.upper():7}  {r.job:{width}}  {r.instance}"
                  + (f"  ({r.error})" if r.error else ""))
        print(f"{sum(r.ok for r in rows)}/{len(rows)} targets up")
    if not rows or not all(r.ok for r in rows):
        raise Exit(code=1)


@task(help={"json_": "machine-readable output", "env": ENV_HELP})
@user_errors
def alerts(c, json_=False, env="local"):
    """The alerts firing now (from Alertmanager); exit 1 if any is."""
    from ..monitoring import status as parse

    with _opened(c, env) as mon:
        rows = parse.alerts(mon.alerts())
    if json_:
        print(json.dumps([vars(r) for r in rows], indent=2))
    elif not rows:
        print("no alert firing")
    for r in ([] if json_ else rows):
        print(f"{r.severity or '-':8}  {r.name}  {r.service}  {r.summary}  (since {r.since[:19]})")
    if rows:
        raise Exit(code=1)


@task(name="open", help={"env": ENV_HELP})
@user_errors
def open_(c, env="local"):
    """Print local URLs of the Prometheus and Alertmanager UIs. On a remote Swarm they
    go through an SSH tunnel via the manager, open until Ctrl-C (nothing is published
    there); locally and on this machine's engine they are reachable as they are."""
    import threading

    with _opened(c, env) as mon:
        for name, url in _uis(mon):
            print(f"{name:13} {url}", flush=True)
        if not mon.tunnelled:
            return
        print("tunnel open through the manager: Ctrl-C to close", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("tunnel closed")


ns = Collection("monitoring", up, down, status, alerts, open_)
