import json
from pathlib import Path

import pytest

from ops.errors import OpsError
from ops.facts.compose import ComposeService, Healthcheck, Model, parse_model, parse_ps, wait_budget
from ops.facts.values import bounded_int, parse_duration, since_option

FIX = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.mark.parametrize("text,seconds", [
    ("5s", 5), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("0s", 0), ("", 0), (None, 0),
    ("1.5s", 1.5), (30_000_000_000, 30),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5", "s", "5x", "1m 30s", "-5s"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_model_from_real_compose_config():
    model = parse_model((FIX / "compose-config-v2.40.json").read_text())
    assert model.project == "opsdev"
    assert set(model.services) == {"api", "app-db", "auth-db", "redis", "gateway"}
    db = model.services["app-db"]
    assert db.role == "database"
    assert db.healthcheck == Healthcheck(interval=5, timeout=3, retries=5, start_period=30)
    assert model.services["gateway"].published_ports == ("127.0.0.1:18080->8080",)
    assert model.services["api"].published_ports == ()
    assert model.services["api"].has_build and not db.has_build
    assert set(model.services["api"].depends_on) == {"app-db", "auth-db", "redis"}
    assert model.services["api"].replicas == 1


def test_wait_budget_follows_longest_chain():
    model = parse_model((FIX / "compose-config-v2.40.json").read_text())
    db = 30 + 5 * (5 + 3)  # start_period + retries * (interval + timeout)
    api = 15 + 3 * (5 + 3)
    gateway = 5 + 3 * (5 + 3)
    assert wait_budget(model) == pytest.approx(db + api + gateway)
    assert wait_budget(model, ["app-db"]) == pytest.approx(db)


def test_wait_budget_floor_and_cycle():
    m = Model("p", {"a": ComposeService("a")})
    assert wait_budget(m, floor=30) == 30
    cyc = Model("p", {"a": ComposeService("a", depends_on=("b",)),
                      "b": ComposeService("b", depends_on=("a",))})
    with pytest.raises(OpsError, match="cycle"):
        wait_budget(cyc)


def test_unknown_service_lists_known():
    model = parse_model((FIX / "compose-config-v2.40.json").read_text())
    with pytest.raises(OpsError, match=r"unknown service 'nope' \(services: api, app-db"):
        model.service("nope")


def test_parse_ps_json_lines_from_compose_2_40():
    containers = parse_ps((FIX / "compose-ps-v2.40.jsonl").read_text())
    assert [c.service for c in containers].count("api") == 3
    api = [c for c in containers if c.service == "api"]
    assert [c.number for c in api] == [1, 2, 3]
    assert all(c.ok for c in containers)
    assert all(len(c.id) == 12 for c in containers)


def test_parse_ps_array_form_and_unhealthy():
    items = [{"Name": "p-redis-1", "Service": "redis", "State": "exited", "Health": "",
              "ExitCode": 137, "ID": "abc", "Labels": "com.docker.compose.container-number=1"},
             {"Name": "p-api-1", "Service": "api", "State": "running", "Health": "unhealthy",
              "ExitCode": 0, "ID": "def", "Labels": ""}]
    containers = parse_ps(json.dumps(items))
    assert [(c.service, c.ok) for c in containers] == [("api", False), ("redis", False)]
    assert containers[1].exit_code == 137
    assert parse_ps("") == []


def test_parse_ps_garbage_is_a_clear_error():
    with pytest.raises(OpsError, match="cannot read `docker compose ps`"):
        parse_ps("{not json")


def test_bounded_int_accepts_the_range_and_refuses_the_rest():
    assert bounded_int("2222", 1, 65535, "bad") == 2222 and bounded_int(19, 1, 19, "bad") == 19
    for junk in (0, 65536, "22; rm -rf /", None, "", 1.5j, True, "0x16"):
        with pytest.raises(OpsError, match="^bad port$"):
            bounded_int(junk, 1, 65535, "bad port")


def test_number_option_one_line_for_every_kind_of_junk():
    from ops.facts.values import number_option

    assert number_option("2.5", "--wait", 0, 10) == 2.5
    assert number_option("7", "--index", 1, 9, integer=True) == 7
    for junk, integer in (("x", False), ("nan", False), ("inf", False), ("-1", False),
                          ("1e9", False), ("2.5", True), ("", True), (True, True), (None, False)):
        with pytest.raises(OpsError, match=r"^--opt must be a (whole )?number from 0 to 100, not "):
            number_option(junk, "--opt", 0, 100, integer=integer)


def test_load_json_names_the_source_and_shows_how_the_answer_starts():
    from ops.facts.values import load_json

    assert load_json('{"a": 1}', "x") == {"a": 1}
    assert load_json('{"a": 1}\n\n{"b": 2}\n', "x", lines=True) == [{"a": 1}, {"b": 2}]
    with pytest.raises(OpsError, match=r"^mgr: docker node ls: unreadable answer \(Expecting value\): "
                                       r"'Got permission denied while"):
        load_json("Got permission denied while trying to connect", "mgr: docker node ls", lines=True)
    with pytest.raises(OpsError, match="unreadable answer"):
        load_json(None, "x")


def test_refused_passwords_are_found_per_service():
    from ops.facts.compose import refused_passwords

    logs = (
        'app-db-1  | 2026-11-23 FATAL:  password authentication failed for user "app"\n'
        'worker-1  | {"msg": "connection lost", "error": "DatabaseError: {\'C\': \'28P01\'}"}\n'
        "rabbitmq-1  | {\"msg\": \"PLAIN login refused: user 'app' - invalid credentials\"}\n"
        "app-db-1  | LOG:  database system is ready to accept connections\n"
        "api-1  | password authentication is configured\n")
    assert refused_passwords(logs) == ["app-db", "worker", "rabbitmq"]
    assert refused_passwords("") == [] and refused_passwords("no pipe here 28P01") == []


def test_up_says_when_compose_gave_up_before_the_budget():
    from ops.platforms.compose.stack import not_healthy

    assert not_healthy("demo", 228.4, 228) == "stack 'demo' did not become healthy within 228s"
    assert not_healthy("demo", 41.2, 228) == (
        "stack 'demo' is not healthy: Compose stopped waiting after 41s of 228s "
        "(a container exited or turned unhealthy)")


@pytest.mark.parametrize("good", ["10m", "1h30m", "90s", "1.5h", "2026-01-01", "2026-01-01T10:00",
                                  "2026-01-01T10:00:00", "2026-01-01T10:00:00.5Z",
                                  "2026-01-01T10:00:00+01:00", "1700000000", "1700000000.25"])
def test_since_takes_what_docker_logs_take(good):
    assert since_option(good) == good


@pytest.mark.parametrize("bad", ["bogus", "", "10 m", "-5m", "yesterday", "2026-1-1",
                                 "10m; reboot", True, "2026-01-01T10"])
def test_a_bad_since_is_one_line_naming_the_option(bad):
    with pytest.raises(OpsError, match=r"^--since must be a duration .* not "):
        since_option(bad)
    assert since_option(None) is None
