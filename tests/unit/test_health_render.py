import json

from ops.health import Check, healthy, render_json, render_table

CHECKS = [Check("redis", "PING", True, 12.3, "PONG"),
          Check("api", "live+ready direct", False, 250.0, "live 200, ready 503")]


def test_table_has_every_row_and_a_verdict():
    text = render_table(CHECKS)
    lines = text.splitlines()
    assert lines[0].split() == ["SERVICE", "CHECK", "STATUS", "LATENCY", "DETAIL"]
    assert "redis" in lines[1] and "ok" in lines[1] and "12 ms" in lines[1]
    assert "FAIL" in lines[2] and "ready 503" in lines[2]
    assert lines[-1] == "1/2 checks ok, 1 failing"


def test_json_shape():
    data = json.loads(render_json(CHECKS))
    assert data["healthy"] is False
    assert data["checks"][0] == {"service": "redis", "check": "PING", "ok": True,
                                 "latency_ms": 12.3, "detail": "PONG", "status": "ok",
                                 "warning": False}


def test_healthy_needs_checks():
    assert not healthy([])
    assert healthy(CHECKS[:1])


def test_a_warning_passes_but_shows():
    checks = [*CHECKS[:1], Check("node mgr", "disk", True, 3.0, "9% free", warning=True)]
    assert healthy(checks)
    assert "warn" in render_table(checks).splitlines()[2]
    assert render_table(checks).splitlines()[-1] == "2/2 checks ok, 1 warning(s)"
    assert json.loads(render_json(checks))["checks"][1]["status"] == "warn"


def test_role_probes_judge_the_whole_answer():
    from ops.commands.probes import BY_ROLE

    assert BY_ROLE["database"].verdict(0, "1\n") == (True, "SELECT 1 -> 1")
    # After a rotation the container's copy of the password is older than the server's
    # ACL: the server still answers (the clients' login is the api readiness' check).
    ok, detail = BY_ROLE["cache"].verdict(0, "NOAUTH Authentication required.")
    assert ok and detail.startswith("PING -> answers (the password was rotated")
    assert BY_ROLE["cache"].verdict(0, "LOADING Redis is loading the dataset in memory") == (
        False, "exit 0: LOADING Redis is loading the dataset in memory")
    assert BY_ROLE["broker"].verdict(69, "Error: unable to perform an operation")[0] is False
    assert BY_ROLE["broker"].verdict(0, "Ping succeeded") == (True, "ping -> Ping succeeded")


def test_a_probe_is_killed_in_its_container_after_its_timeout(tmp_path):
    """The argv `inv health` execs, run here by a real sh: a client that never answers
    (a hung server) is killed after the probe's timeout, and the verdict says so."""
    import shutil
    import subprocess
    import time

    from ops.commands.probes import KILLED, RoleProbe, bounded

    probe = RoleProbe(["sleep", "30"], "SELECT 1", "1", timeout=0.3)
    started = time.monotonic()
    proc = subprocess.run(probe.line.argv, capture_output=True, text=True, timeout=10)
    assert time.monotonic() - started < 5
    # coreutils' timeout signals its own process group too: here a -9; `docker exec` and
    # a shell report that death as 128 + 9.
    code = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
    assert code == KILLED
    assert probe.verdict(code, proc.stdout) == (False, "no answer in 0.3 s (killed)")
    # An image without `timeout` runs the client as it is.
    (tmp_path / "echo").symlink_to(shutil.which("echo"))
    proc = subprocess.run(bounded(["echo", "PONG"], 5).argv, capture_output=True, text=True,
                          env={"PATH": str(tmp_path)}, executable="/bin/sh")
    assert (proc.returncode, proc.stdout) == (0, "PONG\n")
