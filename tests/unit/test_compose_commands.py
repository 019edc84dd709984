from pathlib import Path

from ops.commands import compose, probes

B = compose.base("proj", [Path("/r/compose/compose.yaml")])


def test_base():
    assert B == ["docker", "compose", "--project-name", "proj", "--file", "/r/compose/compose.yaml"]


def test_up_default_and_wait():
    assert compose.up(B) == [*B, "up", "--detach", "--remove-orphans"]
    assert compose.up(B, build=True, wait_timeout=97.5) == [
        *B, "up", "--detach", "--remove-orphans", "--build", "--wait", "--wait-timeout", "97"]


def test_up_scale_only_named_services():
    argv = compose.up(B, wait_timeout=60, services=["api"], scale={"api": 3},
                      no_deps=True, no_recreate=True)
    assert argv == [*B, "up", "--detach", "--remove-orphans", "--wait", "--wait-timeout", "60",
                    "--no-deps", "--no-recreate", "--scale", "api=3", "api"]


def test_down_variants():
    assert compose.down(B) == [*B, "down", "--remove-orphans"]
    assert compose.down(B, volumes=True) == [*B, "down", "--remove-orphans", "--volumes"]
    assert compose.down(B, rmi_local=True) == [*B, "down", "--remove-orphans", "--rmi", "local"]


def test_ps_logs_build_exec_config():
    assert compose.ps(B) == [*B, "ps", "--all", "--format", "json"]
    assert compose.logs(B, ["api", "redis"], follow=True, tail="20", since="10m") == [
        *B, "logs", "--no-color", "--follow", "--tail", "20", "--since", "10m", "api", "redis"]
    assert compose.build(B, ["api"], no_cache=True) == [*B, "build", "--no-cache", "api"]
    assert compose.exec_(B, "api", ["ls", "-la"]) == [*B, "exec", "-T", "api", "ls", "-la"]
    assert compose.exec_(B, "api", ["sh"], index=2, tty=True) == [*B, "exec", "--index", "2", "api", "sh"]
    assert compose.config_json(B) == [*B, "config", "--format", "json"]
    assert compose.config_json(B, interpolate=False)[-1] == "--no-interpolate"
    assert compose.base(None, [Path("/x/c.yaml")], project_directory=Path("/x")) == [
        "docker", "compose", "--project-directory", "/x", "--file", "/x/c.yaml"]


def test_user_text_stays_one_argv_element():
    # A hostile "command" is data: it is never re-parsed by a shell.
    argv = compose.exec_(B, "api", ["echo", "$(rm -rf /); `id`"])
    assert argv[-1] == "$(rm -rf /); `id`"


def test_http_probe_and_parse():
    argv = probes.http_probe(8000, ["/health/live", "/health/ready"])
    assert argv[0:3] == ["python3", "-S", "-c"]
    assert argv[4:] == ["8000", "/health/live", "/health/ready"]
    assert probes.parse_http_probe("/health/live 200\n/health/ready 503\n") == {
        "/health/live": "200", "/health/ready": "503"}
    assert probes.parse_http_probe("garbage\n") == {}
