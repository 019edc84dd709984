"""--env NAME -> one target, or one line saying what to use instead."""

import pytest

from ops import environment as e
from ops.errors import OpsError

ENVS = {"local": {}, "local-swarm": {"engine": "local"},
        "sandbox": {"hosts_file": ".sandbox/hosts.json"},
        "staging": {"hosts": [{"name": "m", "address": "203.0.113.1", "role": "manager"}]},
        "qa": {"vars": {"X": "1"}}}


def test_local_is_always_the_compose_stack():
    assert e.resolve("local", {}).kind == e.COMPOSE
    # even when someone gives it hosts: `local` never means a cluster
    assert e.resolve("local", {"local": {"hosts": [1]}}).kind == e.COMPOSE


@pytest.mark.parametrize("name,over_ssh", [("local-swarm", False), ("sandbox", True),
                                           ("staging", True)])
def test_swarm_environments(name, over_ssh):
    target = e.resolve(name, ENVS)
    assert (target.kind, target.over_ssh) == (e.SWARM, over_ssh)


def test_a_name_without_a_machine_is_refused():
    with pytest.raises(OpsError, match="environment 'qa' names no machine: give it `hosts`"):
        e.resolve("qa", ENVS)
    with pytest.raises(OpsError, match="names no machine"):
        e.resolve("prod", ENVS)  # only a .env.prod file, say


def test_bad_engine_and_bad_entry():
    with pytest.raises(OpsError, match="engine must be `local` or `ssh`"):
        e.resolve("x", {"x": {"engine": "k8s"}})
    with pytest.raises(OpsError, match="must be a mapping"):
        e.resolve("x", {"x": ["a"]})


def test_an_explicit_kind_names_a_registered_platform():
    assert e.resolve("x", {"x": {"kind": "nomad"}}, kinds={"compose", "swarm", "nomad"}).kind == "nomad"
    assert e.resolve("x", {"x": {"kind": "swarm", "engine": "local"}}).kind == e.SWARM
    with pytest.raises(OpsError, match="envs.x.kind must be one of swarm, not 'nomad'"):
        e.resolve("x", {"x": {"kind": "nomad"}})
    with pytest.raises(OpsError, match="`local` is the Compose stack"):
        e.resolve("x", {"x": {"kind": "compose"}})


def _platform(env):
    from ops.config import ROOT
    from ops.platforms import open_env

    return open_env({"envs": ENVS}, env, ROOT)


@pytest.mark.parametrize("task,env,hint", [
    ("up", "sandbox", "use `inv deploy --env sandbox`"),
    ("down", "staging", "use `inv deploy.remove --env staging`"),
    ("clean", "local-swarm", "use `inv deploy.remove --env local-swarm`"),
    ("build", "sandbox", "use `inv build` (images are built here"),
])
def test_compose_tasks_refuse_swarm_environments(task, env, hint):
    with pytest.raises(OpsError) as exc:
        getattr(_platform(env), task)()
    text = str(exc.value)
    assert text.startswith(f"`inv {task}` does not act on {env!r} (a Swarm environment")
    assert hint in text and "\n" not in text
    assert exc.value.code == 2


@pytest.mark.parametrize("task", ["deploy", "rollback", "deploy.status"])
def test_deploy_refuses_the_compose_stack_and_names_local_swarm(task):
    with pytest.raises(OpsError, match=rf"`inv {task}` does not act on 'local' \(the local "
                                       r"Compose stack\): use `--env local-swarm`") as exc:
        _platform("local").deployer(task)
    assert exc.value.code == 2


def test_ssh_only_tasks_refuse_the_local_engine_and_the_compose_stack():
    for env in ("local-swarm", "local"):
        with pytest.raises(OpsError, match=r"`inv hosts.trust` does not act on .*: use an "
                                           "environment with SSH hosts"):
            _platform(env).ssh_hosts("hosts.trust")
    with pytest.raises(OpsError, match=r"`inv swarm.init` does not act on 'local' .*local-swarm"):
        _platform("local").init_cluster()


def test_opening_a_platform_connects_nothing():
    """staging's manager (a documentation address) is never dialled by opening it, nor by
    what needs no connection: its name, its refusals."""
    p = _platform("staging")
    assert (p.kind, p.stack_name) == ("swarm", "opsdemo")
    with pytest.raises(OpsError):
        p.up()
    assert "session" not in vars(p)  # the connected session was never made
    p.close()
