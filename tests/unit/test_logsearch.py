"""inv logs --request / --grep: parsing both engines' timestamped lines, merging them in
time order, the option's validation and the per-node Swarm search."""

import subprocess

import pytest

from ops import logsearch
from ops.errors import OpsError

COMPOSE = """\
worker-1   | 2026-11-24T05:45:15.439068784Z {"msg": "job processed", "request_id": "r-1"}
api-1      | 2026-11-24T05:45:15.371533785Z {"msg": "job enqueued", "request_id": "r-1"}
gateway-1  | 2026-11-24T05:45:15.373178129Z {"uri":"/jobs","request_id":"r-1"}
api-1      | 2026-11-24T05:45:15.372572704Z {"msg": "request", "request_id": "r-2"}
api-1      | 2026-11-24T05:45:15.3Z {"msg": "short fraction", "request_id": "r-1"}
redis-1    | not a timestamped line r-1
"""


def test_compose_lines_for_one_request_come_back_in_time_order():
    found = logsearch.matching(COMPOSE.splitlines(keepends=True), "r-1")
    assert [(e.source, e.text.split('"')[3]) for e in found] == [
        ("api-1", "short fraction"), ("api-1", "job enqueued"),
        ("gateway-1", "/jobs"), ("worker-1", "job processed")]
    assert found[0].ts == "2026-11-24T05:45:15.300000000Z"  # padded: sorts as time
    assert found[-1].render() == ('2026-11-24T05:45:15.439068784Z worker-1 | '
                                  '{"msg": "job processed", "request_id": "r-1"}')


def test_the_source_name_alone_does_not_match_and_odd_lines_are_skipped():
    assert logsearch.matching(COMPOSE.splitlines(), "worker-1") == []
    for line in ("", "no separator", "x | not-a-time msg", " | 2026-11-24T05:45:15Z no source",
                 "x | 2026-11-24T05:45:15+01:00 not utc"):
        assert logsearch.entry(line) is None


@pytest.mark.parametrize("bad", [None, "", "   ", "a\nb", "tab\there", "x" * 201, True])
def test_a_bad_needle_is_one_line_naming_the_option(bad):
    with pytest.raises(OpsError, match=r"^--request must be 1 to 200 printable"):
        logsearch.needle(bad, "--request")


def _fake_docker(tmp_path, body: str):
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\n" + body)
    fake.chmod(0o755)
    return {"PATH": f"{tmp_path}:/usr/bin:/bin"}


# A node's stand-in `docker`: `ps` lists three containers of the stack (one of a service
# not asked for), `logs` prints two timestamped lines of the container it is given.
NODE_DOCKER = """\
case "$1" in
ps) echo "args: $*" >&2
    echo "c1 st_api-blue st_api-blue.2.t1"
    echo "c2 st_worker st_worker.1.t2"
    echo "c3 st_redis st_redis.1.t3" ;;
logs) for last; do :; done
    echo "2026-11-24T05:45:15.2Z unrelated from $last"
    echo "2026-11-24T05:45:15.1Z has NEEDLE from $last" ;;
esac
"""


def test_a_node_search_reads_the_chosen_services_containers_and_quotes_what_it_is_given(tmp_path):
    """The built line, run with a stand-in `docker` (the real one on the sandbox): only
    the chosen services' containers are read, only matching lines come back, each under
    the task and node `docker service logs` would name, and a hostile needle stays data."""
    needle = "x'; touch pwned #"
    env = _fake_docker(tmp_path, NODE_DOCKER.replace("NEEDLE", needle))
    line = logsearch.node_search("st", ["st_api-blue", "st_worker"], needle, tail="50", since="10m")
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0 and not (tmp_path / "pwned").exists(), out.stderr
    found, missing = logsearch.node_entries(out.stdout, "sandbox-2", needle)
    assert missing == []
    assert [(e.source, e.text) for e in found] == [
        ("st_api-blue.2.t1@sandbox-2", f"has {needle} from c1"),
        ("st_worker.1.t2@sandbox-2", f"has {needle} from c2")]
    assert "--filter label=com.docker.stack.namespace=st" in out.stderr
    assert "docker logs --tail 50 --since 10m --timestamps" in line


def test_a_container_whose_logs_hang_is_cut_off_and_named(tmp_path):
    env = _fake_docker(tmp_path, NODE_DOCKER.replace("logs) ", 'logs) case "$*" in *c2) sleep 30;; esac; '))
    line = logsearch.node_search("st", ["st_api-blue", "st_worker"], "NEEDLE", wait=1)
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, env=env, timeout=20)
    found, missing = logsearch.node_entries(out.stdout, "n1", "NEEDLE", wait=1)
    assert [e.source for e in found] == ["st_api-blue.2.t1@n1"]
    assert missing == ["the logs of st_worker.1.t2@n1 (docker logs did not finish within 1 s)"]


def test_node_output_lines_outside_a_task_or_without_a_time_are_skipped():
    out = ("2026-11-24T05:45:15Z before any task x\n#task ../evil 0\n2026-11-24T05:45:15Z x\n"
           "#task st_api.1.t 0\nnot-a-time x\n2026-11-24T05:45:15+01:00 x\n"
           "2026-11-24T05:45:16Z  x  \n")
    found, missing = logsearch.node_entries(out, "n", "x")
    assert [(e.ts, e.source, e.text) for e in found] == [
        ("2026-11-24T05:45:16.000000000Z", "st_api.1.t@n", " x  ")]
    assert missing == []


def test_incomplete_keeps_what_was_found_and_says_what_is_missing():
    exc = logsearch.Incomplete([], ["node w's logs (the node is down)", "the logs of a@b (x)"])
    assert str(exc) == "not searched: node w's logs (the node is down); the logs of a@b (x)"
