"""Slow probes started on a guess: when a guess counts, and what a run does otherwise."""

import threading
import time

from ops import early_probe
from ops.facts.compose import ComposeService, Model
from ops.health import TURN_CAP, guessed_names, run_jobs

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
        "rabbitmq": ComposeService("rabbitmq", labels={"ops.role": "broker"}),
        "mq2": ComposeService("mq2", labels={"ops.role": "broker"}, replicas=2),
        "named": ComposeService("named", labels={"ops.role": "broker"}, container_name="my-mq"),
        "off": ComposeService("off", labels={"ops.role": "broker"}, replicas=0),
        "redis": ComposeService("redis", labels={"ops.role": "cache"}),
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


class _Overlap:
    """Callables that record how many of them run at once, and when each started."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.starts = {}

    def job(self, name, seconds):
        def run():
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.starts[name] = time.monotonic()
            time.sleep(seconds)
            with self.lock:
                self.running -= 1
            return True, name
        return run


def test_execs_take_turns_while_a_slow_probe_runs():
    seen = _Overlap()
    slow = lambda: (time.sleep(0.6), (True, "slow"))[1]  # noqa: E731
    execs = [("s", f"e{i}", seen.job(i, 0.05)) for i in range(4)]
    checks = run_jobs([("mq", "ping", slow), *execs], first={slow},
                      execs={fn for *_, fn in execs})
    assert all(c.ok for c in checks)
    assert seen.most == 1
    # each one's latency is its own run, not its wait for the turn
    assert all(c.latency_ms < 200 for c in checks[1:])


def test_a_hung_exec_holds_the_others_back_by_the_cap_at_most_once():
    seen = _Overlap()
    slow = lambda: (time.sleep(1.0), (True, "slow"))[1]  # noqa: E731
    hung = seen.job("hung", 2.0)
    quick = [seen.job(i, 0.01) for i in range(3)]
    t0 = time.monotonic()
    run_jobs([("mq", "ping", slow), ("db", "hung", hung), *[("s", "q", q) for q in quick]],
             first={slow}, execs={hung, *quick})
    # Whichever had its turn before the hung one, the quick ones never waited for it
    # to end (2 s), nor for the slow probe (1 s): only the cap after its start, once.
    # The bounds are halfway between the cap and those waits: a loaded machine's
    # scheduling delay does not fail it, a wait for either would.
    latest = max(seen.starts[i] for i in range(3))
    assert latest - seen.starts["hung"] < (TURN_CAP + 2.0) / 2
    assert latest - t0 < (TURN_CAP + 1.0) / 2


def test_execs_go_at_once_when_the_slow_probes_are_done():
    seen = _Overlap()
    slow = lambda: (time.sleep(0.05), (True, "slow"))[1]  # noqa: E731
    execs = [seen.job(i, 0.3) for i in range(4)]
    t0 = time.monotonic()
    run_jobs([("mq", "ping", slow), *[("s", "e", e) for e in execs]], first={slow},
             execs=set(execs))
    assert seen.most >= 3  # one in turn before the gate opened, the rest together
    assert time.monotonic() - t0 < 0.9  # not 4 x 0.3 in sequence


def test_without_a_slow_probe_execs_run_at_once():
    seen = _Overlap()
    execs = [seen.job(i, 0.1) for i in range(4)]
    run_jobs([("s", "e", e) for e in execs], execs=set(execs))
    assert seen.most == 4


def test_a_job_with_no_answer_is_a_failed_check_and_does_not_hold_the_run():
    hung = threading.Event()
    t0 = time.monotonic()
    checks = run_jobs([("app-db", "SELECT 1", lambda: (hung.wait(30), (True, "late"))[1]),
                       ("redis", "PING", lambda: (True, "PONG"))], deadline=0.3)
    assert time.monotonic() - t0 < 2
    assert [(c.service, c.ok, c.detail) for c in checks] == [
        ("app-db", False, "no answer in 0.3 s"), ("redis", True, "PONG")]
    hung.set()
