import sys
from pathlib import Path

import pytest

from ops import shell
from ops.errors import OpsError

# Captured from docker CLI 28.2 and Compose 2.40.
ENGINE_DOWN = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
               "Is the docker daemon running?")
NO_COMPOSE = "docker: unknown command: docker compose\n\nRun 'docker --help' for more information"


def test_docker_problem_classification():
    assert "Docker engine not reachable" in shell.docker_problem(ENGINE_DOWN)
    assert "Compose v2 plugin missing" in shell.docker_problem(NO_COMPOSE)
    assert "Compose v2 plugin missing" in shell.docker_problem(
        "docker: 'compose' is not a docker command.")
    assert shell.docker_problem("Error: No such container: x") is None


def test_run_success_and_failure_names_the_step():
    ok = shell.run([sys.executable, "-c", "print('hi')"])
    assert ok.ok and ok.stdout == "hi\n"
    with pytest.raises(OpsError, match=r"^the step failed \(exit 3\): boom$"):
        shell.run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
                  what="the step")
    soft = shell.run([sys.executable, "-c", "raise SystemExit(2)"], check=False)
    assert soft.returncode == 2


def test_run_missing_binary_is_one_line():
    with pytest.raises(OpsError, match="no-such-binary-xyz: command not found"):
        shell.run(["no-such-binary-xyz"])


def test_run_timeout():
    with pytest.raises(OpsError, match="timed out"):
        shell.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2, what="sleeper")


def test_argv_is_never_shell_interpreted(tmp_path):
    marker = tmp_path / "pwned"
    out = shell.run(["echo", f"; touch {marker}", f"$(touch {marker})"])
    assert not marker.exists()
    assert out.stdout.strip() == f"; touch {marker} $(touch {marker})"


def _alive(pid: int, within: float = 3.0) -> bool:
    """Still running `within` seconds from now (a SIGKILLed process dies a moment after
    the signal, not at once)."""
    import time

    deadline = time.monotonic() + within
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def test_a_timeout_ends_the_whole_tree_other_process_groups_too(tmp_path):
    """A docker CLI plugin (Compose) may run in a process group of its own: a timeout
    that killed only the first process left such plugins running under PID 1."""
    pids = tmp_path / "pids"
    script = (f"sleep 30 & echo $! > {pids}; setsid sleep 31 & echo $! >> {pids}; "
              "sh -c 'sleep 32' & echo $! >> " + str(pids) + "; wait")
    with pytest.raises(OpsError, match="timed out after 1s"):
        shell.run(["sh", "-c", script], timeout=1, what="a stuck tree")
    found = [int(p) for p in pids.read_text().split()]
    assert len(found) == 3
    assert not [p for p in found if _alive(p)], "left running"
