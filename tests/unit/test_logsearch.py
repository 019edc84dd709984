"""inv logs --request / --grep: parsing both engines' timestamped lines, merging them in
time order, the option's validation and the manager-side command."""

import shlex
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
# As `docker service logs --timestamps` prints them: the timestamp comes first.
SWARM = ("2026-11-24T05:52:01.749034703Z opsdemo_worker.1.w1b2c3@sandbox-2    | "
         '{"msg": "job processed", "request_id": "r-9"}\n'
         "2026-11-24T05:52:01.7Z opsdemo_api-blue.2.a9z8@sandbox-1    | "
         '{"msg": "job enqueued", "request_id": "r-9", "note": "a | b"}\n')


def test_compose_lines_for_one_request_come_back_in_time_order():
    found = logsearch.matching(COMPOSE.splitlines(keepends=True), "r-1")
    assert [(e.source, e.text.split('"')[3]) for e in found] == [
        ("api-1", "short fraction"), ("api-1", "job enqueued"),
        ("gateway-1", "/jobs"), ("worker-1", "job processed")]
    assert found[0].ts == "2026-11-24T05:45:15.300000000Z"  # padded: sorts as time
    assert found[-1].render() == ('2026-11-24T05:45:15.439068784Z worker-1 | '
                                  '{"msg": "job processed", "request_id": "r-1"}')


def test_swarm_lines_name_task_and_node_and_merge_across_nodes():
    api, worker = logsearch.matching(SWARM.splitlines(), "r-9")
    assert api.source == "opsdemo_api-blue.2.a9z8@sandbox-1"
    assert api.text == '{"msg": "job enqueued", "request_id": "r-9", "note": "a | b"}'
    assert worker.source.endswith("@sandbox-2") and worker.ts == "2026-11-24T05:52:01.749034703Z"


def test_the_source_name_alone_does_not_match_and_odd_lines_are_skipped():
    assert logsearch.matching(COMPOSE.splitlines(), "worker-1") == []
    for line in ("", "no separator", "x | not-a-time msg", " | 2026-11-24T05:45:15Z no source",
                 "x | 2026-11-24T05:45:15+01:00 not utc"):
        assert logsearch.entry(line) is None


@pytest.mark.parametrize("bad", [None, "", "   ", "a\nb", "tab\there", "x" * 201, True])
def test_a_bad_needle_is_one_line_naming_the_option(bad):
    with pytest.raises(OpsError, match=r"^--request must be 1 to 200 printable"):
        logsearch.needle(bad, "--request")


def test_the_manager_command_filters_each_service_and_quotes_what_it_is_given(tmp_path):
    """Run the built line with a stand-in `docker` that prints two lines per service
    (the real one is exercised on the sandbox): only matching lines come back, every
    service's, and the hostile needle stays data."""
    needle = "x'; touch pwned #"
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\n"
                    'for last; do :; done\n'
                    f'echo "2026-11-24T05:45:15.1Z $last.1.t@n    | has {needle}"\n'
                    'echo "2026-11-24T05:45:15.2Z $last.1.t@n    | unrelated"\n'
                    'echo "args: $*" >&2\n')
    fake.chmod(0o755)
    line = logsearch.remote_search(["st_api-blue", "st_worker"], needle, tail="50", since="10m")
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert out.returncode == 0 and not (tmp_path / "pwned").exists()
    found = logsearch.matching(out.stdout.splitlines(), needle)
    assert sorted(e.source for e in found) == ["st_api-blue.1.t@n", "st_worker.1.t@n"]
    assert "--no-trunc --tail 50 --since 10m --timestamps st_worker" in line
    assert shlex.split(line.split("grep -F -e ", 1)[1])[0] == needle
