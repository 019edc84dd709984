"""The deploy's and rollback's step order and failure paths, run by ops/platforms/swarm/bluegreen.py
against a fake manager: a connection that answers each command the way a Swarm manager
does and records what was done. The commands themselves are tested by their text in
test_deploy_pure.py; the real Swarm runs these flows in tests/integration."""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
import tarfile
from dataclasses import dataclass

import pytest

from ops.commands import deploy as cmd
from ops.deploy import stackfile
from ops.errors import OpsError
from ops.facts import swarm_stack
from ops.platforms.swarm import bluegreen
from ops.platforms.swarm import deployment as swarm_deployment
from ops.runtime.runner import Runner

from .test_deploy_pure import _plan

APP, REPO, CLOCK = "opsdemo", "ops-example/api", "2026-12-04T15:00:00"
GATEWAY = "0123456789ab"


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class FakeManager(Runner):
    """A Swarm manager as the flow sees it through its runner: services and their images,
    the live upstream, the gateway; `steps` records what was changed, in order."""

    def __init__(self, paths: cmd.Paths, live=("blue", "v1"), bad_image=None, refuse=None):
        """`refuse`: the color/tag whose upstream nginx -t rejects."""
        self.paths, self.bad_image, self.refuse = paths, bad_image, refuse
        old = f"{REPO}:{live[1]}"
        base = stackfile.base_waits(_plan().t)  # the databases, broker, gateway: running
        self.images = {**{n: image for n, image, _ in base}, "blue": old, "green": f"{REPO}:v0",
                       "worker": old}
        self.replicas = {**{n: count for n, _, count in base}, "blue": 2, "green": 2, "worker": 1}
        self.upstream = stackfile.upstream(APP, live[0], live[1], 8000)
        self.serving = live
        self.releases = {f"{paths.releases}/20261201T000000Z-{live[1]}":
                         {"followers.json": json.dumps({"services": {"worker": {"image": old}}})}}
        self.steps: list[str] = []

    # -- the runner's interface (put is the base class's: a run with a tar on stdin) ------
    name, prefix, local = "m", True, False

    def run(self, command, what=None, *, check=True, input=None, timeout=None, env=None):
        self.input = input
        result = self.answer(command) or Result()
        if check and not result.ok:
            raise OpsError(self.label(f"{what} failed (exit {result.returncode}): {result.stdout}"))
        return result

    def answer(self, c: str) -> Result | None:
        if f"|| exit {cmd.SWITCH_REFUSED};" in c:  # write, nginx -t, reload: one round trip
            self.upstream = base64.b64decode(re.search(r"printf %s (\S+) \|", c).group(1)).decode()
            self.steps += [f"write upstream {'/'.join(swarm_stack.parse_upstream(self.upstream))}",
                           "nginx -t"]
            if "/".join(swarm_stack.parse_upstream(self.upstream)) == self.refuse:
                return Result("emerg: bad upstream", returncode=cmd.SWITCH_REFUSED)
            self.serving = swarm_stack.parse_upstream(self.upstream)
            self.steps.append(f"reload -> {'/'.join(self.serving)}")
            return Result()
        if c.startswith("date -u"):
            return Result(f"{CLOCK}\n{self.upstream}")
        if ".new.$$" in c and "deploy.lock" in c:
            self.steps.append("lock")
        elif c.startswith("if grep -q") and "rm -f" in c:
            self.steps.append("unlock")
        elif "stack deploy --help" in c:
            return Result(returncode=1)
        elif "ls -1d" in c:
            tag = re.search(r"\*Z-(\S+?) 2>", c)
            found = sorted(r for r in self.releases if not tag or r.endswith(f"Z-{tag.group(1)}"))
            return Result(found[-1] + "\n" if found else "")
        elif ".partial" in c and "tar -x" in c:  # put: the folder's files, a tar on stdin
            release = re.search(r"mv \S+ (\S+)$", c).group(1).strip("'")
            with tarfile.open(fileobj=io.BytesIO(self.input)) as tar:
                self.releases[release] = {m.name: tar.extractfile(m).read().decode()
                                          for m in tar.getmembers()}
            self.steps.append(f"upload {release.rsplit('Z-', 1)[1]}")
        elif c.startswith("if [ -f") and "followers.json" in c:
            path = shlex.split(c)[3]
            return Result(self.releases.get(path.rsplit("/", 1)[0], {}).get("followers.json", ""))
        elif "docker stack deploy" in c:
            return self.stack_deploy(c)
        elif cmd.TASKS_MARK in c:
            return Result(self.services_state(shlex.split(c.split(" ||")[0])[3:]))
        elif c == cmd.gateway_container(APP):
            return Result(GATEWAY + "\n")
        elif c.startswith(f"docker exec {GATEWAY} sh -c"):  # the probe of every task
            which = shlex.split(c)[-2].rsplit("_", 1)[1]
            tag = self.images[which].rsplit(":", 1)[1]
            return Result("".join(f"probe 10.0.0.{i} 200 {tag} {which}\n"
                                  for i in range(self.replicas[which])))
        elif c.startswith(f"docker exec {GATEWAY} curl"):
            color, tag = self.serving
            return Result(f"HTTP/1.1 200 OK\r\nX-App-Color: {color}\r\nX-App-Version: {tag}\r\n\r\n")
        elif "base64 -d" in c and self.paths.upstream in c:
            self.upstream = base64.b64decode(re.search(r"printf %s (\S+) \|", c).group(1)).decode()
            self.steps.append(f"write upstream {'/'.join(swarm_stack.parse_upstream(self.upstream))}")
        elif c.startswith("docker service scale"):
            name, count = re.search(r"--detach '?([\w-]+)=(\d+)", c).groups()
            self.replicas[name.rsplit("_", 1)[1]] = int(count)
            self.steps.append(f"scale {name}={count}")
        elif "audit.jsonl" in c:
            record = json.loads(shlex.split(c.split("printf ", 1)[1])[1])
            self.steps.append(f"audit {record['action']} {record['outcome']}")
        elif c.startswith("docker secret ls --format"):
            return Result("")
        return None

    def stack_deploy(self, c: str) -> Result:
        release, name = re.search(r"cd (\S+) && docker stack deploy .* -c (\S+)", c).groups()
        part = name.removesuffix(".json")
        tag = release.strip("'").rsplit("Z-", 1)[1]
        if part in ("blue", "green"):
            self.images[part] = f"{REPO}:{tag}"
        elif part == "followers":
            self.images["worker"] = f"{REPO}:{tag}"
        self.steps.append(f"stack deploy {part} {tag}")
        return Result()

    def services_state(self, names: list[str]) -> str:
        services, tasks = [], []
        for full in names:
            name = full.rsplit("_", 1)[1]
            image = self.images.get(name, f"{name}:1")
            services.append({"ID": name, "Spec": {"Name": full, "Mode": {"Replicated": {
                "Replicas": self.replicas.get(name, 1)}}, "TaskTemplate": {"ContainerSpec": {
                    "Image": image}}}, "UpdateStatus": {"State": "completed"}})
            failed = image == self.bad_image
            for slot in range(self.replicas.get(name, 1)):
                tasks.append({"ID": f"{name}{slot}", "ServiceID": name, "Slot": slot + 1,
                              "CreatedAt": CLOCK + ".5Z", "DesiredState": "running",
                              "Spec": {"ContainerSpec": {"Image": image}},
                              "Status": {"State": "failed" if failed else "running",
                                         "Err": "unhealthy" if failed else ""}})
        return json.dumps(services) + f"\n{cmd.TASKS_MARK}\n" + json.dumps(tasks)


def deployment(fake: FakeManager) -> swarm_deployment.Deployment:
    import io

    return swarm_deployment.Deployment(env="staging", target=fake, paths=fake.paths,
                                       replicas=2, out=io.StringIO())


@pytest.fixture
def paths():
    return cmd.Paths("/var/lib/ops-toolkit", APP)


def test_a_deploy_rolls_the_idle_color_and_the_worker_together_then_switches(paths):
    fake = FakeManager(paths)
    rec = bluegreen.deploy(deployment(fake), _plan(), "v2", lambda: fake.steps.append("images"))
    assert fake.steps == [
        "lock", "images", "upload v2", "stack deploy base v2",
        # both rolled out, and both gated, before any user is moved
        "stack deploy green v2", "stack deploy followers v2",
        "write upstream green/v2", "nginx -t", "reload -> green/v2",
        "audit deploy ok", "unlock"]
    assert (rec["from_color"], rec["to_color"], rec["to_tag"]) == ("blue", "green", "v2")
    assert {k: fake.images[k] for k in ("blue", "green", "worker")} == {
        "blue": f"{REPO}:v1", "green": f"{REPO}:v2", "worker": f"{REPO}:v2"}
    assert "followers_moved" not in rec and list(rec["timings"])[-1] == "switch"


def test_a_color_that_fails_its_gate_is_stopped_and_the_worker_goes_back(paths):
    fake = FakeManager(paths, bad_image=f"{REPO}:v2")
    with pytest.raises(swarm_deployment.StepFailed,
                       match=r"^deploy green: opsdemo_\w+ \(ops-example/api:v2\)"):
        bluegreen.deploy(deployment(fake), _plan(), "v2", lambda: None)
    assert "write upstream green/v2" not in fake.steps  # nobody was moved
    after = fake.steps[fake.steps.index("stack deploy followers v2") + 1:]
    assert after == ["scale opsdemo_green=0", "stack deploy followers v1", "audit deploy failed",
                     "unlock"]
    assert fake.serving == ("blue", "v1") and fake.images["worker"] == f"{REPO}:v1"


def test_a_refused_switch_is_switched_back_and_the_worker_goes_back(paths):
    fake = FakeManager(paths, refuse="green/v2")
    with pytest.raises(swarm_deployment.StepFailed, match="switch: nginx -t rejected the new upstream"):
        bluegreen.deploy(deployment(fake), _plan(), "v2", lambda: None)
    after = fake.steps[fake.steps.index("stack deploy followers v2") + 1:]
    assert after == ["write upstream green/v2", "nginx -t", "write upstream blue/v1", "nginx -t",
                     "reload -> blue/v1", "stack deploy followers v1", "audit deploy failed",
                     "unlock"]
    assert fake.serving == ("blue", "v1") and fake.images["worker"] == f"{REPO}:v1"


@pytest.mark.parametrize("wait", [None, 30.0])
def test_a_rollback_switches_first_and_the_worker_follows(paths, wait):
    fake = FakeManager(paths, live=("green", "v2"))
    fake.images.update(blue=f"{REPO}:v1", worker=f"{REPO}:v2")
    fake.releases[f"{paths.releases}/20261130T000000Z-v1"] = {
        "followers.json": json.dumps({"services": {"worker": {"image": f"{REPO}:v1"}}})}
    rec = bluegreen.rollback(deployment(fake), wait_followers=wait)
    assert fake.steps == ["lock", "write upstream blue/v1", "nginx -t", "reload -> blue/v1",
                          "stack deploy followers v1", "audit rollback ok", "unlock"]
    assert rec["followers"] == ("done" if wait else "background")
    assert rec["verified_seconds"] <= rec["seconds"] and fake.images["worker"] == f"{REPO}:v1"
