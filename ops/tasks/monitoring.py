"""monitoring.up / down / status / alerts: Prometheus, Alertmanager and the exporters."""

from __future__ import annotations

import json

from invoke import Collection, Exit, task

from ..environment import COMPOSE
from ..parse import number_option
from .common import ENV_HELP, target, user_errors

DAY = 86400


def _monitoring(c, env, name):
    from ..backup.service import backup_config
    from ..monitoring import settings
    from ..monitoring.local import LocalMonitoring
    from ..stack import Stack

    s, _ = target(c, env, f"monitoring.{name}", {COMPOSE}, family="monitoring")
    m = settings.load(c.config.get("monitoring", {}), s.variables)
    metrics = backup_config(s, c.config.get("backup", {})).metrics_file
    return LocalMonitoring(Stack(s), m, metrics.parent if metrics else None)


@task(help={"timeout": "seconds to wait for every monitoring service's health (default 120)",
            "env": ENV_HELP})
@user_errors
def up(c, timeout=None, env="local"):
    """Start Prometheus, Alertmanager and the exporters (the `monitoring` profile), with
    the alert rules rendered from invoke.yaml's `monitoring:` thresholds."""
    wait = number_option(timeout, "--timeout", 1, DAY) if timeout is not None else 120
    mon = _monitoring(c, env, "up")
    started = mon.up(timeout=wait)
    print(f"monitoring up: {', '.join(started)}")
    print(f"  prometheus    {mon.url('prometheus', 9090)}/")
    print(f"  alertmanager  {mon.url('alertmanager', 9093)}/")
    if mon.grafana:
        print(f"  grafana       {mon.url('grafana', 3000)}/  (user admin, GRAFANA_ADMIN_PASSWORD)")
    if not mon.m.webhook_url:
        print("  no ALERT_WEBHOOK_URL or BACKUP_WEBHOOK_URL: alerts are kept, not sent")


@task(help={"env": ENV_HELP})
@user_errors
def down(c, env="local"):
    """Stop and remove the monitoring services (their data volumes stay)."""
    stopped = _monitoring(c, env, "down").down()
    print(f"monitoring down: {', '.join(stopped)}")


@task(help={"json_": "machine-readable output", "env": ENV_HELP})
@user_errors
def status(c, json_=False, env="local"):
    """Every scrape target and its health; exit 1 if any is down."""
    from ..monitoring import status as parse

    mon = _monitoring(c, env, "status")
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

    rows = parse.alerts(_monitoring(c, env, "alerts").alerts())
    if json_:
        print(json.dumps([vars(r) for r in rows], indent=2))
    elif not rows:
        print("no alert firing")
    for r in ([] if json_ else rows):
        print(f"{r.severity or '-':8}  {r.name}  {r.service}  {r.summary}  (since {r.since[:19]})")
    if rows:
        raise Exit(code=1)


ns = Collection("monitoring", up, down, status, alerts)
