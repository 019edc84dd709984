"""Slow probes started on a guess: when a guess counts, and what a run does otherwise."""

import threading
import time

from ops import early_probe
from ops.health import guessed_names, run_jobs
from ops.parse import Model, Service

PASS, FAIL = (True, "ping -> Ping succeeded"), (False, "exit 69: nodedown")


def _again(calls):
    def again():
        calls.append("again")
        return True, "probed again"
    return again


def test_a_confirmed_passing_guess_is_the_result():
    calls = []
    guess = early_probe.Early("c1", lambda: PASS)
    assert guess.job("c1", _again(calls))() == PASS
    assert calls == []


def test_a_guess_in_another_container_is_probed_again():
    calls = []
    guess = early_probe.Early("c1", lambda: PASS)
    assert guess.job("c2", _again(calls))() == (True, "probed again")
    assert calls == ["again"]


def test_a_failed_guess_is_never_the_verdict():
    """The guessed container may have been replaced meanwhile: a failure is confirmed
    by a probe of the container the state names, never reported from the guess."""
    calls = []
    guess = early_probe.Early("c1", lambda: FAIL)
    assert guess.job("c1", _again(calls))() == (True, "probed again")
    assert calls == ["again"]


def test_an_unused_guess_is_stopped_and_a_used_one_is_not():
    stopped = []
    unused = early_probe.Early("c1", lambda: PASS, stop=lambda: stopped.append("c1"))
    used = early_probe.Early("c2", lambda: PASS, stop=lambda: stopped.append("c2"))
    used.job("c2", lambda: FAIL)()
    unused.close()
    used.close()
    assert stopped == ["c1"]


def test_the_reported_latency_counts_from_the_probes_own_start():
    guess = early_probe.in_thread("c1", lambda: (time.sleep(0.2), PASS)[1])
    time.sleep(0.2)  # the rest of the command runs meanwhile
    (check,) = run_jobs([("rabbitmq", "ping", guess.job("c1", lambda: FAIL))])
    assert check.ok and check.detail == PASS[1]
    assert check.latency_ms >= 195  # not the ~0 ms the job itself waited


def test_a_probe_that_raises_in_its_thread_is_a_failed_guess():
    def boom():
        raise OSError("connection reset")
    guess = early_probe.in_thread("c1", boom)
    assert guess.job("c1", lambda: (True, "probed again"))() == (True, "probed again")


def test_slow_jobs_start_first_and_the_report_keeps_its_order():
    started = []
    lock = threading.Lock()

    def job(name):
        def run():
            with lock:
                started.append(name)
            return True, name
        return run

    jobs = [("a", "cheap", job("a")), ("b", "cheap", job("b")), ("z", "slow", job("z"))]
    checks = run_jobs(jobs, first={jobs[2][2]})
    assert started[0] == "z"
    assert [c.service for c in checks] == ["a", "b", "z"]


def test_guessed_names_are_composes_for_the_slow_roles_only():
    model = Model("p", {
        "rabbitmq": Service("rabbitmq", labels={"ops.role": "broker"}),
        "mq2": Service("mq2", labels={"ops.role": "broker"}, replicas=2),
        "named": Service("named", labels={"ops.role": "broker"}, container_name="my-mq"),
        "off": Service("off", labels={"ops.role": "broker"}, replicas=0),
        "redis": Service("redis", labels={"ops.role": "cache"}),
    })
    assert sorted(guessed_names(model, "demo")) == [
        "demo-mq2-1", "demo-mq2-2", "demo-rabbitmq-1", "my-mq"]


def test_places_round_trip_and_garbage_is_no_place(tmp_path):
    path = tmp_path / "sub" / "places.json"
    assert early_probe.load_places(path) == []  # none yet
    places = [{"host": "mgr1", "container": "ab" * 32, "role": "broker"}]
    early_probe.save_places(path, places)
    assert early_probe.load_places(path) == places
    assert [p.name for p in path.parent.iterdir()] == ["places.json"]  # no temp left
    for text in ("{not json", '{"a": 1}', '[{"host": 1, "container": "x", "role": "broker"}]'):
        path.write_text(text)
        assert early_probe.load_places(path) == []


def test_the_cli_asks_the_engine_the_sdk_lists_not_a_context_elsewhere():
    env = early_probe.sdk_engine_env({"PATH": "/bin", "DOCKER_CONTEXT": "remote-prod"})
    assert env == {"PATH": "/bin", "DOCKER_HOST": "unix:///var/run/docker.sock"}
    env = early_probe.sdk_engine_env({"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_TLS_VERIFY": "1"})
    assert env == {"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_TLS_VERIFY": "1"}
