"""Every task against a third kind of environment, made here: a new kind needs only its
own platform (ops/platforms/base.Platform) and a registration, no task changes.

The fake records what each task asked of it; a task either gets its answer from the
fake (and prints it) or is refused by the fake's own `Refusing` defaults, in one line
naming the task and the environment."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from invoke import Config, Context, Exit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import tasks  # noqa: E402
from ops import platforms  # noqa: E402
from ops.errors import OpsError  # noqa: E402
from ops.health import Check  # noqa: E402
from ops.platforms.base import ConfigView, Listing, Platform, Refusing  # noqa: E402

CALLS: list[str] = []


class FakeSite:
    env = "fake"

    def roles(self):
        CALLS.append("site.roles")
        return {"db": {"ops.role": "database"}}

    def manager_lock(self, service, db):
        return nullcontext()

    def default_db(self, service):
        return "postgres"

    def locate(self, service):
        raise OpsError(f"{service}: not running")

    def checker(self, service, image):
        return self.locate(service)

    def drill_machine(self, where, image):
        raise OpsError("no drills on a fake")

    def publish_metrics(self, path):
        CALLS.append("site.publish_metrics")

    def close(self):
        CALLS.append("site.close")


class FakeMonitoring:
    tunnelled, grafana, m = False, False, None

    def targets(self):
        CALLS.append("monitoring.targets")
        return {"data": {"activeTargets": [{"labels": {"job": "api", "instance": "api:8000"},
                                            "health": "up"}]}}

    def jobs(self):
        return {"api"}

    def alerts(self):
        CALLS.append("monitoring.alerts")
        return []

    def down(self):
        CALLS.append("monitoring.down")
        return ["prometheus"]

    def close(self):
        CALLS.append("monitoring.close")


class FakePlatform(Refusing):
    """A kind that runs a stack but neither deploys nor has SSH hosts."""

    kind = "fake"
    description = "a fake environment"
    instead = {"deploy": "fakes are started with `inv up --env {env}`"}

    def __init__(self, settings, where, config):
        self.settings, self.where, self.env = settings, where, settings.env
        CALLS.append("open")

    stack_name = "fakestack"

    def up(self, build=False, timeout=None):
        CALLS.append(f"up build={build} timeout={timeout}")
        return 1.5

    def down(self, volumes=False, ask=None):
        CALLS.append(f"down volumes={volumes}")

    def migrate(self, allow_breaking=False):
        CALLS.append(f"migrate allow_breaking={allow_breaking}")
        return {"pending": ["app/0002.x.sql"], "applied": ["app/0002.x.sql"], "restore_point": "p1"}

    def build(self, services=(), no_cache=False):
        CALLS.append(f"build {list(services)}")
        return ["fake/api:abc"]

    def clean(self):
        CALLS.append("clean")

    def gateway_url(self):
        return "https://fake.invalid"

    def ps(self):
        CALLS.append("ps")
        return Listing([{"service": "api", "state": "running"}],
                       [("SERVICE", "STATE"), ("api", "running")], ["  ! one note"])

    def health(self):
        CALLS.append("health")
        return [Check("api", "ready", True, 1.0, "200")]

    def logs(self, services, follow=False, tail=None, since=None, timestamps=False):
        CALLS.append(f"logs {services} tail={tail}")

    def search_logs(self, services, text, tail=None, since=None):
        CALLS.append(f"search_logs {text}")
        return []

    def exec(self, service, argv, index=1, tty=False):
        CALLS.append(f"exec {service} {argv} {index}")
        return 0

    def scale(self, spec, timeout=None):
        CALLS.append(f"scale {spec}")
        return {"api": {"replicas": 3}}

    def config_view(self):
        return ConfigView({"kind": "fake"}, ["env       fake (a fake)"])

    def tls(self):
        raise OpsError("no gateway certificate for fake yet")

    def backup_site(self):
        CALLS.append("backup_site")
        return FakeSite()

    def monitoring(self, m):
        CALLS.append("monitoring")
        return FakeMonitoring()

    def stack_config(self):
        CALLS.append("stack_config")
        return {"services": {}, "secrets": {}}

    def rotate(self, rotation, apply):
        raise AssertionError("nothing is rotatable in an empty stack")

    def audit_input(self):
        CALLS.append("audit_input")
        return None

    def plan_entry(self):
        from ops.plan import Env

        return Env(self.env, "fake")

    def close(self):
        CALLS.append("close")


@pytest.fixture
def ctx(monkeypatch, tmp_path):
    monkeypatch.setitem(platforms.KINDS, "fake", FakePlatform)
    CALLS.clear()
    # Backups and their metrics under tmp_path only (BACKUP_DIR, as invoke.yaml sets it).
    cfg = Config(overrides={"envs": {"fake": {"kind": "fake"}},
                            "stack": {"vars": {"BACKUP_DIR": str(tmp_path)}}})
    return Context(config=cfg)


def run(task, c, **kwargs):
    """The task's output lines and exit (0, or Exit's code and message)."""
    try:
        task(c, env="fake", **kwargs)
    except Exit as exc:
        return exc.code, exc.message or ""
    return 0, ""


def interface(protocol) -> set[str]:
    """The members a Protocol declares (methods and attributes)."""
    return {n for n in [*vars(protocol), *protocol.__annotations__] if not n.startswith("_")}


@pytest.mark.parametrize("kind", ["compose", "swarm", "fake"])
def test_every_kind_implements_the_declared_interface(kind, monkeypatch):
    monkeypatch.setitem(platforms.KINDS, "fake", FakePlatform)
    cls = platforms.factory_of(kind)
    per_instance = {"env", "settings"}  # set by __init__
    missing = sorted(n for n in interface(Platform) - per_instance if not hasattr(cls, n))
    assert not missing, f"{cls.__name__} lacks {missing}"
    assert len(interface(Platform)) > 25


def test_the_swarm_deployer_is_the_declared_one():
    from ops.platforms.base import Deployer
    from ops.platforms.swarm.deployer import SwarmDeployer

    assert not sorted(n for n in interface(Deployer) if not hasattr(SwarmDeployer, n))


def test_the_fake_site_and_monitoring_are_the_declared_ones():
    from ops.platforms.base import BackupSite

    assert not sorted(n for n in interface(BackupSite) if not hasattr(FakeSite, n))


@pytest.mark.parametrize("task,kwargs,calls,printed", [
    (tasks.ns["up"], {}, ["up build=False timeout=None"], "stack 'fakestack' healthy in 1.5s"),
    (tasks.ns["down"], {}, ["down volumes=False"], ""),
    (tasks.ns["migrate"], {"allow_breaking": True}, ["migrate allow_breaking=True"],
     "applied 1 migration(s); restore point p1"),
    (tasks.ns["build"], {}, ["build []"], "tagged fake/api:abc"),
    (tasks.ns["clean"], {}, ["clean"], ""),
    (tasks.ns["ps"], {}, ["ps"], "api      running\n  ! one note"),
    (tasks.ns["ps"], {"json_": True}, ["ps"], '"state": "running"'),
    (tasks.ns["health"], {}, ["health"], "api"),
    (tasks.ns["logs"], {"tail": "5"}, ["logs [] tail=5"], ""),
    (tasks.ns["exec"], {"service": "api", "command": "ls -la"}, ["exec api ['ls', '-la'] 1"], ""),
    (tasks.ns["scale"], {"spec": "api=3"}, ["scale api=3"], "api: 3 replica(s) healthy"),
    (tasks.ns["config"], {}, [], "env       fake (a fake)"),
    (tasks.ns["secrets.list"], {}, ["stack_config"], ""),
    (tasks.ns["monitoring.status"], {}, ["monitoring", "monitoring.targets", "monitoring.close"],
     "1/1 targets up"),
    (tasks.ns["monitoring.alerts"], {}, ["monitoring", "monitoring.alerts"], "no alert firing"),
    (tasks.ns["monitoring.down"], {}, ["monitoring", "monitoring.down"], "monitoring down: prometheus"),
    (tasks.ns["db.schedule"], {}, [], "scripts/backup-cron --env fake"),
    (tasks.ns["db.list"], {}, [], "no backups under"),
])
def test_a_task_acts_through_the_platform(ctx, capsys, task, kwargs, calls, printed):
    assert run(task, ctx, **kwargs) == (0, "")
    out = capsys.readouterr().out
    assert printed in out
    assert CALLS[0] == "open" and CALLS[-1] == "close"
    for call in calls:
        assert call in CALLS


@pytest.mark.parametrize("task,kwargs,message", [
    (tasks.ns["deploy"], {}, "`inv deploy` does not act on 'fake' (a fake environment): fakes are "
                             "started with `inv up --env fake`"),
    (tasks.ns["rollback"], {}, "`inv rollback` does not act on 'fake'"),
    (tasks.ns["deploy.status"], {}, "`inv deploy.status` does not act on 'fake'"),
    (tasks.ns["deploy.history"], {}, "`inv deploy.history` does not act on 'fake'"),
    (tasks.ns["hosts.trust"], {}, "`inv hosts.trust` does not act on 'fake' (a fake environment)"),
    (tasks.ns["hosts.provision"], {}, "`inv hosts.provision` does not act on 'fake'"),
    (tasks.ns["swarm.init"], {}, "`inv swarm.init` does not act on 'fake'"),
    (tasks.ns["images.deliver"], {}, "`inv images.deliver` does not act on 'fake'"),
    (tasks.ns["maintenance.on"], {}, "`inv maintenance.on` does not act on 'fake'"),
    (tasks.ns["maintenance.status"], {}, "`inv maintenance.status` does not act on 'fake'"),
])
def test_what_the_kind_does_not_do_is_refused_in_one_line(ctx, task, kwargs, message):
    code, text = run(task, ctx, **kwargs)
    assert code == 2 and text.startswith("error: " + message) and "\n" not in text
    assert CALLS[-1] == "close"  # opened, refused, closed: nothing else asked of it


def test_features_reach_the_platforms_places(ctx):
    code, text = run(tasks.ns["db.backup"], ctx)
    assert code == 1 and "db: not running" in text, text
    assert "backup_site" in CALLS and "site.roles" in CALLS and "site.close" in CALLS
    code, text = run(tasks.ns["tls.show"], ctx)
    assert (code, text) == (1, "error: no gateway certificate for fake yet")
    code, text = run(tasks.ns["secrets.rotate"], ctx, name="app_db_password")
    assert code == 1 and "app_db_password" in text and "stack_config" in CALLS


def test_the_config_json_is_the_platforms_head(ctx, capsys):
    assert run(tasks.ns["config"], ctx, json_=True) == (0, "")
    shown = json.loads(capsys.readouterr().out)
    assert shown["env"] == "fake" and shown["kind"] == "fake" and "variables" in shown


def test_an_unregistered_kind_is_one_line(monkeypatch):
    from ops.config import ROOT

    with pytest.raises(OpsError, match="envs.x.kind must be one of swarm, not 'nomad'"):
        platforms.open_env({"envs": {"x": {"kind": "nomad"}}}, "x", ROOT)
