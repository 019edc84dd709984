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


@pytest.mark.parametrize("task,family,env,hint", [
    ("up", None, "sandbox", "use `inv deploy --env sandbox`"),
    ("down", None, "staging", "use `inv deploy.remove --env staging`"),
    ("clean", None, "local-swarm", "use `inv deploy.remove --env local-swarm`"),
])
def test_compose_tasks_refuse_swarm_environments(task, family, env, hint):
    with pytest.raises(OpsError) as exc:
        e.require(e.resolve(env, ENVS), task, {e.COMPOSE}, family)
    text = str(exc.value)
    assert text.startswith(f"`inv {task}` does not act on {env!r} (a Swarm environment")
    assert hint in text and "\n" not in text
    assert exc.value.code == 2


def test_deploy_refuses_the_compose_stack_and_names_local_swarm():
    with pytest.raises(OpsError, match=r"`inv deploy` does not act on 'local' \(the local "
                                       r"Compose stack\): use `--env local-swarm`"):
        e.require(e.resolve("local", ENVS), "deploy", {e.SWARM}, "deploy")


def test_ssh_only_tasks_refuse_the_local_engine():
    with pytest.raises(OpsError, match="an environment with SSH hosts"):
        e.require(e.resolve("local-swarm", ENVS), "hosts.trust", {e.SWARM}, "hosts", over_ssh=True)
    target = e.resolve("sandbox", ENVS)
    assert e.require(target, "hosts.trust", {e.SWARM}, "hosts", over_ssh=True) is target


def test_supported_pairs_pass_through():
    for name in ("local", "sandbox"):
        target = e.resolve(name, ENVS)
        assert e.require(target, "ps", {e.COMPOSE, e.SWARM}) is target
