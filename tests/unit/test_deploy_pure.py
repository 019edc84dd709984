"""Pure parts of the deploy: stack files, upstream file, rollout verdicts, probes, shell
lines, audit records, delta image delivery, load summaries."""

from __future__ import annotations

import io
import json
import shlex
import tarfile
from pathlib import Path

import pytest

from ops.commands import deploy as cmd
from ops.deploy import records, stackfile, translate
from ops.errors import OpsError
from ops.facts import rollout, swarm_stack
from ops.remote.image_transfer import chain_ids, skippable
from tests.support import loadgen

FIX = Path(__file__).resolve().parent.parent / "fixtures"
MODEL = json.loads((FIX / "compose-config-deploy-v2.40.json").read_text())
REL = stackfile.Release(app="opsdemo", app_image="ops-example/api", replicas=2)
VALUES = {"app_db_password": "s3cret-db", "auth_db_password": "s3cret-auth",
          "redis_password": "s3cret-redis", "broker_password": "s3cret-broker"}


def _plan(model=MODEL, values=VALUES):
    t = translate.translate(model, root="/src/ops", on_nodes=("/var/lib/ops-toolkit",))
    return stackfile.Plan(t, REL, dict(values), {"gateway_conf": "events {}\n"})


def _files(plan, which="green", tag="v2"):
    return {k: (json.loads(v) if k.endswith(".json") else v)
            for k, v in plan.files(which, tag).items()}


def test_the_deployed_stack_is_the_compose_stack():
    """Every compose service is deployed (both databases, the broker, the worker) and
    split by role: data tier and gateway in base, the blue-green service per color, the
    services running its image as followers."""
    files = _files(_plan())
    assert set(files) == {"base.json", "green.json", "followers.json", "config-gateway_conf"}
    assert set(files["base.json"]["services"]) == {"app-db", "auth-db", "redis", "rabbitmq",
                                                   "gateway"}
    assert list(files["green.json"]["services"]) == ["green"]  # never touches blue
    assert list(files["followers.json"]["services"]) == ["worker"]
    green = files["green.json"]["services"]["green"]
    assert green["image"] == "ops-example/api:v2" and green["deploy"]["replicas"] == 2
    assert green["environment"]["APP_COLOR"] == "green"
    assert green["environment"]["BROKER_HOST"] == "rabbitmq"  # as in compose.yaml
    assert green["deploy"]["labels"] == {"ops.color": "green", "ops.tag": "v2"}
    assert green["healthcheck"]["interval"] == "2s"  # the deploy overlay's
    assert green["deploy"]["update_config"]["parallelism"] == 0
    worker = files["followers.json"]["services"]["worker"]
    assert worker["image"] == "ops-example/api:v2" and worker["command"][-1] == "app.worker"
    for doc in (files["base.json"], files["green.json"], files["followers.json"]):
        assert doc["version"] == "3.8"
        for name, svc in doc["services"].items():
            assert svc["deploy"]["endpoint_mode"] == "dnsrr", name  # no IPVS here
            for key in ("build", "depends_on", "restart", "container_name", "security_opt"):
                assert key not in svc, (name, key)


def test_swarm_only_keys_are_translated_and_noted():
    plan = _plan()
    base = _files(plan)["base.json"]
    db = base["services"]["app-db"]
    assert db["deploy"]["restart_policy"]["condition"] == "any"  # from restart: unless-stopped
    assert db["deploy"]["placement"]["constraints"] == ["node.role == manager"]  # its volume
    assert db["deploy"]["resources"]["limits"] == {"cpus": "1", "memory": "536870912"}
    assert db["secrets"] == [{"source": "app_db_password", "target": "app_db_password",
                              "mode": 0o444}]
    # shm_size, which Swarm lacks, becomes a sized tmpfs on /dev/shm
    assert {"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": 134217728}} in db["volumes"]
    gw = base["services"]["gateway"]
    assert gw["ports"] == [{"target": 8080, "published": 8080, "protocol": "tcp", "mode": "host"}]
    assert gw["volumes"][0] == {"type": "bind", "source": "/var/lib/ops-toolkit/opsdemo/live",
                                "target": "/etc/nginx/ops/live", "read_only": True}
    assert {"type": "tmpfs", "target": "/tmp"} in gw["volumes"]
    assert gw["configs"][0]["target"] == "/etc/nginx/ops/nginx.conf"
    assert base["networks"]["backend"] == {"driver": "overlay", "internal": True}
    assert set(base["volumes"]) == {"app-db-data", "auth-db-data", "redis-data", "rabbitmq-data"}
    notes = "\n".join(plan.t.notes)
    assert "build (api)" in notes and "security_opt (" in notes
    assert "depends_on (" in notes and "restart (" in notes


def test_loopback_ports_and_checkout_binds_are_dropped_not_widened():
    model = json.loads(json.dumps(MODEL))
    model["services"]["redis"]["ports"] = [{"mode": "ingress", "host_ip": "127.0.0.1",
                                            "target": 6379, "published": "6379"}]
    model["services"]["redis"]["volumes"].append({"type": "bind", "source": "/src/ops/x",
                                                  "target": "/x"})
    plan = _plan(model)
    redis = plan.t.services["redis"]
    assert "ports" not in redis
    assert all(m.get("source") != "/src/ops/x" for m in redis["volumes"])
    notes = "\n".join(plan.t.notes)
    assert "127.0.0.1:6379 dropped" in notes and "/src/ops/x is not on the nodes" in notes


def test_a_stack_without_exactly_one_blue_green_service_is_refused():
    model = json.loads(json.dumps(MODEL))
    del model["services"]["api"]["labels"]["ops.deploy"]
    with pytest.raises(OpsError, match="exactly one service labelled ops.deploy"):
        _plan(model).t.followers()
    model["services"]["api"]["labels"]["ops.deploy"] = "blue-green"
    model["services"]["gateway"]["labels"]["ops.deploy"] = "blue-green"
    with pytest.raises(OpsError, match="found 2: api, gateway"):
        _plan(model).files("blue", "v1")
    model = json.loads(json.dumps(MODEL))
    del model["services"]["rabbitmq"]["image"]
    with pytest.raises(OpsError, match="rabbitmq has no image"):
        _plan(model)


def test_secret_and_config_names_are_versioned_and_values_never_written():
    names, configs = _plan().names()
    changed, _ = _plan(values={**VALUES, "redis_password": "rotated"}).names()
    assert names["app_db_password"] == changed["app_db_password"]
    assert names["redis_password"] != changed["redis_password"]
    assert configs["gateway_conf"].startswith("opsdemo_gateway_conf_")
    files = _plan().files("blue", "v1")
    assert not any("s3cret" in text for text in files.values())
    for name in ("base.json", "blue.json", "followers.json"):
        doc = json.loads(files[name])
        assert all(s["external"] for s in doc["secrets"].values())
    # Each file declares exactly the secrets its services use.
    assert set(json.loads(files["followers.json"])["secrets"]) == {"app_db_password",
                                                                  "broker_password"}
    masked = stackfile.Plan(_plan().t, REL, None, None)
    assert set(masked.names()[0].values()) == {f"opsdemo_{k}_********" for k in VALUES}
    assert "config-gateway_conf" not in masked.files("blue", "v1")


def test_images_split_by_placement_and_base_waits():
    t = _plan().t
    pinned, anywhere = stackfile.images(t)
    assert set(pinned) == {MODEL["services"][n]["image"]
                           for n in ("app-db", "redis", "rabbitmq", "gateway")}
    assert anywhere == []
    assert {name for name, _, _ in stackfile.base_waits(t)} == set(t.base())
    assert translate.repository("reg:5000/team/api:v1@sha256:ab") == "reg:5000/team/api"
    assert translate.repository("api") == "api"


def test_counts_set_by_inv_scale_win_over_the_files():
    files = {k: json.loads(v) for k, v in
             _plan().files("blue", "v3", {"api": 4, "worker": 3}).items() if k.endswith(".json")}
    assert files["blue.json"]["services"]["blue"]["deploy"]["replicas"] == 4
    assert files["followers.json"]["services"]["worker"]["deploy"]["replicas"] == 3
    assert stackfile.parse_scaled('{"api": 3, "worker": 0}') == {"api": 3, "worker": 0}
    for garbage in ("", "[1]", "{bad", '{"api": -1, "x y": 2, "w": true, "v": 51}'):
        assert stackfile.parse_scaled(garbage) == {}


def test_service_images_of_a_stack_file():
    assert stackfile.service_images('{"services": {"w": {"image": "a:1"}}}') == {"w": "a:1"}
    assert stackfile.service_images("") == {} and stackfile.service_images("not json") == {}


def test_stale_secret_and_config_versions():
    listed = ("secret app_redis_password_old\nsecret app_redis_password_new\n"
              "secret app_app_db_password_aaa\nconfig app_gateway_conf_1\n"
              "config app_gateway_conf_2\nsecret app_orphan_just_made\n")
    # blue (the rollback target) still uses the old redis secret; nothing uses conf_1.
    refs = ("secret app_redis_password_old\nsecret app_app_db_password_aaa\n"
            "secret app_redis_password_new\nsecret app_app_db_password_aaa\n"
            "config app_gateway_conf_2\n")
    stale = stackfile.stale_objects(listed, refs, keep={"app_orphan_just_made"})
    assert stale == {"config": ["app_gateway_conf_1"]}
    assert stackfile.stale_objects(listed, "", keep=set()) == {}  # unread refs: keep all
    assert stackfile.stale_objects(listed + "secret app_x\n", refs, set())["secret"] == [
        "app_orphan_just_made", "app_x"]
    line = cmd.swarm_objects_rm("secret", ["a_b", "c$(id)"])
    assert shlex.split(line)[:4] == ["docker", "secret", "rm", "a_b"] and "'c$(id)'" in line
    for kind, names in (("volume", ["x"]), ("secret", [])):
        with pytest.raises(ValueError):
            cmd.swarm_objects_rm(kind, names)
    assert "label=ops.app=op" in cmd.swarm_objects("op") and \
        "com.docker.stack.namespace=op" in cmd.swarm_object_refs("op")


def test_upstream_file_round_trip_and_garbage():
    text = stackfile.upstream("opsdemo", "green", "abc123", 8000)
    assert "set $api http://opsdemo_green:8000;" in text
    assert swarm_stack.parse_upstream(text) == ("green", "abc123")
    assert stackfile.upstream_port(text) == 8000
    assert stackfile.upstream_port("# ops-deploy live=blue tag=x\n") is None
    assert swarm_stack.parse_upstream("set $api http://api:8000;\n") is None
    assert swarm_stack.parse_upstream("# ops-deploy live=purple tag=x\n") is None
    assert swarm_stack.parse_upstream("") is None
    with pytest.raises(ValueError):
        stackfile.upstream("opsdemo", "purple", "x", 8000)


def _task(state, image="api:v2", desired="running", created="2026-01-01T00:00:10Z"):
    return rollout.Task("t", 1, image, desired, state, "", "n", created)


def _svc(update=None, replicas=2, started="2026-01-01T00:00:05.123Z"):
    return rollout.SwarmService("s", "api:v2", replicas, {}, update, "", started)


@pytest.mark.parametrize("service, tasks, state", [
    (None, [], "wait"),
    (_svc(), [_task("running"), _task("running")], "done"),
    (_svc(), [_task("running"), _task("starting")], "wait"),  # health-gated
    (_svc("updating"), [_task("running"), _task("running")], "wait"),
    (_svc("completed"), [_task("running"), _task("running"), _task("running", "api:v1")], "wait"),
    (_svc("paused"), [_task("running")], "failed"),
    (_svc("rollback_completed"), [_task("running")], "failed"),
    # A paused update left by an earlier rollout (the color scaled up again) is not ours.
    (_svc("paused", started="2025-12-31T23:59:00Z"), [_task("running"), _task("running")], "done"),
    # An unhealthy task that drains on SIGTERM ends `complete`: still a failure.
    (_svc(), [_task("complete", desired="shutdown"), _task("failed", desired="shutdown")], "failed"),
    # Failures from before this rollout do not count.
    (_svc(), [_task("failed", desired="shutdown", created="2025-01-01T00:00:00Z"),
              _task("failed", desired="shutdown", created="2025-01-01T00:00:00Z"),
              _task("running"), _task("running")], "done"),
])
def test_rollout_verdicts(service, tasks, state):
    assert rollout.assess(service, tasks, "api:v2", 2, since="2026-01-01T00:00:00").state == state


def test_inspect_parsers_strip_digests():
    svc = rollout.SwarmService.from_inspect({"Spec": {"Name": "a_blue", "TaskTemplate": {"ContainerSpec": {
        "Image": "reg:5000/api:v2@sha256:abc"}}, "Mode": {"Replicated": {"Replicas": 3}}},
        "UpdateStatus": {"State": "completed", "StartedAt": "2026-01-01T00:00:01.5Z"}})
    assert (svc.image, svc.tag, svc.replicas, svc.update_state) == ("reg:5000/api:v2", "v2", 3, "completed")
    assert svc.update_started == "2026-01-01T00:00:01.5Z"
    task = rollout.Task.from_inspect({"ID": "x" * 25, "Status": {"State": "running"},
                                       "Spec": {"ContainerSpec": {"Image": "api:v2@sha256:1"}}})
    assert task.image == "api:v2" and task.full_id == "x" * 25


def test_probe_judgement():
    out = "probe 10.0.0.5 200 v2 green\nprobe 10.0.0.6 200 v2 green\nnoise\n"
    probes = rollout.parse_probe(out)
    assert rollout.judge_probe(probes, 2, "v2", "green") is None
    assert "1 of 2" in rollout.judge_probe(probes[:1], 2, "v2", "green")
    assert "503" in rollout.judge_probe(rollout.parse_probe("probe 1.2.3.4 503 v2 green"), 1, "v2", "green")
    assert "expected green/v3" in rollout.judge_probe(probes, 2, "v3", "green")


def test_headers_of_the_last_response():
    text = "HTTP/1.1 301 Moved\r\nX-App-Color: blue\r\n\r\nHTTP/1.1 200 OK\r\nX-App-Color: green\r\n"
    assert rollout.parse_headers(text) == {":status": "200", "x-app-color": "green"}


def test_shell_lines_quote_and_validate():
    paths = cmd.Paths("/var/lib/ops-toolkit", "opsdemo")
    assert paths.upstream == "/var/lib/ops-toolkit/opsdemo/live/upstream.conf"
    for bad_base in ("relative", "/a/../etc", "/a b", "/a;rm"):
        with pytest.raises(ValueError):
            cmd.Paths(bad_base, "opsdemo")
    with pytest.raises(ValueError):
        cmd.Paths("/x", "op$(id)")
    with pytest.raises(ValueError):
        paths.release("../../etc")
    line = cmd.write_file(paths.upstream, "set $api 'x';\n$(reboot)")
    assert "$(reboot)" not in line and "reboot" not in line  # content travels base64
    assert shlex.split(line)[-1] == paths.upstream
    with pytest.raises(ValueError):
        cmd.gateway_exec("abc; rm -rf /", ["nginx"])
    with pytest.raises(ValueError):
        cmd.check_tag("v1;reboot")
    with pytest.raises(ValueError):
        cmd.append_line("/x", "two\nlines")
    assert cmd.other("blue") == "green" and cmd.other("green") == "blue"


def test_secret_values_go_to_stdin_never_the_command_line():
    line = cmd.secret_create("opsdemo_redis_password_abc", "opsdemo")
    assert line.endswith("- >/dev/null")


def test_audit_records_parse_and_describe():
    rec = records.record("deploy", "staging", "ok", from_color="blue", to_color="green",
                       from_tag="v1", to_tag="v2", seconds=12.3, step=None)
    assert "step" not in rec and rec["user"] and rec["from_host"]
    parsed = records.parse(records.line(rec) + "\n{broken\n\n")
    assert parsed[0] == rec and parsed[1] == {"damaged": "{broken"}
    assert "blue(v1) -> green(v2)" in records.describe(rec)
    failed = records.describe({**rec, "outcome": "failed", "step": "probe", "error": "503"})
    assert failed.endswith("at probe: 503")


def test_layer_chain_ids():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    import hashlib

    assert chain_ids([a]) == [a]
    assert chain_ids([a, b])[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def _archive(images: dict[str, list[str]]) -> tarfile.TarFile:
    """A `docker save`-shaped archive: manifest.json, configs, one file per layer."""
    buf = io.BytesIO()
    manifest = []
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, data: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, diffs in images.items():
            add(f"{name}.json", json.dumps({"rootfs": {"diff_ids": diffs}}).encode())
            layers = [f"{d[-4:]}/layer.tar" for d in diffs]
            manifest.append({"Config": f"{name}.json", "Layers": layers})
        add("manifest.json", json.dumps(manifest).encode())
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r:")


def test_only_layers_the_node_lacks_are_sent():
    base, mid, top = ("sha256:" + "0" * 60 + suffix for suffix in ("base", "mid0", "top0"))
    have = set(chain_ids([base, mid]))
    assert skippable(_archive({"api": [base, mid, top]}), have) == {"base/layer.tar", "mid0/layer.tar"}
    # Same diff on another chain (a different base below it): needed, not skipped.
    other = "sha256:" + "1" * 60 + "oth0"
    assert skippable(_archive({"x": [other, mid]}), have) == set()
    assert skippable(_archive({"api": [base, mid, top]}), set()) == set()


def test_load_summary():
    s = [loadgen.Sample(0.0, True, 200, 0.01, "blue", "v1"),
         loadgen.Sample(0.5, True, 200, 0.02, "green", "v2", retried=True),
         loadgen.Sample(0.7, False, 0, 5.0, "", "", "ConnectTimeout"),
         loadgen.Sample(1.0, True, 200, 0.03, "green", "v2")]
    out = loadgen.summary(s)
    assert (out["requests"], out["failed"], out["retried"]) == (4, 1, 1)
    assert out["sequence"] == ["blue/v1", "green/v2"] and out["max_ms"] == 5000.0
    assert out["errors"] == ["t=0.7s ConnectTimeout"]


def test_a_429_proves_nothing_and_is_never_called_a_wrong_color():
    from ops.facts.rollout import Identity, judge_identity

    assert judge_identity(Identity(200, "green", "v2"), "green", "v2") == "ok"
    assert judge_identity(Identity(429), "green", "v2") == "limited"
    assert judge_identity(Identity(200, "blue", "v1"), "green", "v2") == "wrong"
    assert judge_identity(Identity(503, "green", "v2"), "green", "v2") == "wrong"
    assert judge_identity(Identity(0, error="ConnectTimeout"), "green", "v2") == "wrong"
    assert Identity(429).describe() == "HTTP 429, rate-limited: not a wrong color"
    assert Identity(200, "blue", "v1").describe() == "HTTP 200 from blue/v1"
    assert Identity(0, error="ConnectTimeout").describe() == "no response (ConnectTimeout)"


def test_the_switch_is_verified_on_the_path_that_is_never_rate_limited():
    from ops.commands.deploy import VERIFY_PATH, fetch_through_gateway

    nginx = (Path(__file__).resolve().parents[2] / "compose/gateway/nginx.conf").read_text()
    block = nginx.split("location /health {", 1)[1].split("}", 1)[0]
    assert VERIFY_PATH.startswith("/health") and "limit_req" not in block
    assert fetch_through_gateway("0123456789ab").endswith(f"https://127.0.0.1:8080{VERIFY_PATH}")


def test_several_services_state_read_in_one_round_trip():
    """`services_state` output captured from a Swarm (Engine 20.10) for opsdemo_green,
    opsdemo_worker and a service that does not exist, trimmed to the keys read."""
    text = (Path(__file__).resolve().parents[1] / "fixtures" / "deploy" /
            "services-state-20.10.txt").read_text()
    state = rollout.parse_services_state(text, cmd.TASKS_MARK)
    assert set(state) == {"opsdemo_green", "opsdemo_worker"}  # the missing one: absent
    green, tasks = state["opsdemo_green"]
    assert (green.image, green.replicas, green.update_state) == ("ops-dev/api:d2", 2, "completed")
    assert len(tasks) == 10 and all(t.service_id == green.id for t in tasks)
    since = min(t.created for t in tasks if t.desired == "running")  # this rollout's start
    assert rollout.assess(green, tasks, "ops-dev/api:d2", 2, since).state == "done"
    # without `since`, the earlier rollouts' shut-down d2 tasks count as failures
    assert rollout.assess(green, tasks, "ops-dev/api:d2", 2).state == "failed"
    worker, tasks = state["opsdemo_worker"]
    since = min(t.created for t in tasks if t.desired == "running")
    assert rollout.assess(worker, tasks, "ops-dev/api:d2", 1, since).state == "done"
    assert rollout.assess(worker, tasks, "ops-dev/api:d3", 1, since).state == "wait"
    command = cmd.services_state(["opsdemo_green", "x;rm -rf /"])
    assert "'x;rm -rf /'" in command and command.count(cmd.TASKS_MARK) == 1


def test_servers_keep_the_secret_version_they_run_with():
    """A rotated (or edited) password: the clients get the new version, the database,
    cache and broker keep theirs (they read it only at initialisation), so no server is
    restarted; a version gone from the Swarm is not kept."""
    first = _plan()
    base1 = first.files("blue", "v1")["base.json"]
    old = first.names()[0]
    rotated = _plan(values={**VALUES, "app_db_password": "rotated", "redis_password": "rotated-too"})
    present = set(old.values()) | set(rotated.names()[0].values())
    pins = stackfile.server_pins(base1, rotated.t, present)
    assert pins == {"app-db": {"app_db_password": old["app_db_password"]},
                    "auth-db": {"auth_db_password": old["auth_db_password"]},
                    "redis": {"redis_password": old["redis_password"]},
                    "rabbitmq": {"broker_password": old["broker_password"]}}
    files = {k: json.loads(v) for k, v in rotated.files("green", "v1", pins=pins).items()
             if k.endswith(".json")}
    db = files["base.json"]["services"]["app-db"]["secrets"][0]
    assert db["source"] == "app_db_password__pinned" and db["target"] == "app_db_password"
    assert files["base.json"]["secrets"]["app_db_password__pinned"]["name"] == old["app_db_password"]
    new = rotated.names()[0]["app_db_password"]
    assert new != old["app_db_password"]
    assert {s["app_db_password"]["name"] for s in (files["green.json"]["secrets"],
                                                   files["followers.json"]["secrets"])} == {new}
    # The pins carry over from a pinned file; a version removed since is not pinned.
    base2 = rotated.files("green", "v1", pins=pins)["base.json"]
    assert stackfile.server_pins(base2, rotated.t, present) == pins
    gone = present - {old["redis_password"]}
    assert "redis" not in stackfile.server_pins(base2, rotated.t, gone)
    assert stackfile.server_pins("", rotated.t, present) == {}  # first deploy
    assert stackfile.server_pins("{broken", rotated.t, present) == {}


def test_a_secret_swap_keeps_each_reference_where_and_how_it_was_mounted():
    refs = [{"name": "app_app_db_password_0123", "target": "app_db_password", "uid": "0",
             "gid": "0", "mode": 0o444}]
    line = cmd.secret_swap("app_app-db-exporter", refs, "app_app_db_password_4567")
    assert shlex.split(line) == [
        "docker", "service", "update", "--quiet", "--detach",
        "--secret-rm", "app_app_db_password_0123",
        "--secret-add", "source=app_app_db_password_4567,target=app_db_password,uid=0,gid=0,mode=0444",
        "app_app-db-exporter"]
    svc = rollout.SwarmService.from_inspect({"Spec": {"Name": "a", "TaskTemplate": {"ContainerSpec": {
        "Secrets": [{"SecretName": "s1", "File": {"Name": "k", "UID": "101", "GID": "101", "Mode": 256}}]}}}})
    assert svc.secrets == ({"name": "s1", "target": "k", "uid": "101", "gid": "101", "mode": 0o400},)


@pytest.mark.parametrize(("value", "mode"), [("0400", 0o400), ("0444", 0o444), (256, 0o400), ("400", 0o400)])
def test_a_secrets_mode_is_read_as_compose_prints_it(value, mode):
    assert translate.file_mode(value) == mode


def test_kept_release_tags_newest_first_each_once():
    listing = ("20261201T100000Z-l1\n20261201T110000Z-l2\n20261201T120000Z-l1\n"
               "not-a-release\n20261201T130000Z-v1.2.3\n")
    assert cmd.release_tags(listing) == ["v1.2.3", "l1", "l2"]
    assert cmd.release_tags("") == []
    assert str(cmd.list_releases(cmd.Paths("/var/lib/ops-toolkit", "app"))).startswith(
        "if [ -d /var/lib/ops-toolkit/app/releases ]")
