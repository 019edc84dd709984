from pathlib import Path

from ops.commands import compose, probes

B = compose.base("proj", [Path("/r/compose/compose.yaml")])
A = B.argv  # run without a shell: what the tests compare is the argv


def test_base():
    assert A == ["docker", "compose", "--project-name", "proj", "--file", "/r/compose/compose.yaml"]


def test_up_default_and_wait():
    assert compose.up(B).argv == [*A, "up", "--detach", "--remove-orphans"]
    assert compose.up(B, build=True, wait_timeout=97.5).argv == [
        *A, "up", "--detach", "--remove-orphans", "--build", "--wait", "--wait-timeout", "97"]


def test_up_scale_only_named_services():
    argv = compose.up(B, wait_timeout=60, services=["api"], scale={"api": 3},
                      no_deps=True, no_recreate=True).argv
    assert argv == [*A, "up", "--detach", "--remove-orphans", "--wait", "--wait-timeout", "60",
                    "--no-deps", "--no-recreate", "--scale", "api=3", "api"]


def test_down_variants():
    assert compose.down(B).argv == [*A, "down", "--remove-orphans"]
    assert compose.down(B, volumes=True).argv == [*A, "down", "--remove-orphans", "--volumes"]
    assert compose.down(B, rmi_local=True).argv == [*A, "down", "--remove-orphans", "--rmi", "local"]


def test_ps_logs_build_exec_config():
    assert compose.ps(B).argv == [*A, "ps", "--all", "--format", "json"]
    assert compose.logs(B, ["api", "redis"], follow=True, tail="20", since="10m").argv == [
        *A, "logs", "--no-color", "--follow", "--tail", "20", "--since", "10m", "api", "redis"]
    assert compose.build(B, ["api"], no_cache=True).argv == [*A, "build", "--no-cache", "api"]
    assert compose.exec_(B, "api", ["ls", "-la"]).argv == [*A, "exec", "-T", "api", "ls", "-la"]
    assert compose.exec_(B, "api", ["sh"], index=2, tty=True).argv == [
        *A, "exec", "--index", "2", "api", "sh"]
    assert compose.config_json(B).argv == [*A, "config", "--format", "json"]
    assert compose.config_json(B, interpolate=False).argv[-1] == "--no-interpolate"
    assert compose.base(None, [Path("/x/c.yaml")], project_directory=Path("/x")).argv == [
        "docker", "compose", "--project-directory", "/x", "--file", "/x/c.yaml"]


def test_user_text_stays_one_argv_element():
    # A hostile "command" is data: it is never re-parsed by a shell.
    argv = compose.exec_(B, "api", ["echo", "$(rm -rf /); `id`"]).argv
    assert argv[-1] == "$(rm -rf /); `id`"


def test_http_probe_and_parse():
    argv = probes.http_probe(8000, ["/health/live", "/health/ready"]).argv
    assert argv[0:3] == ["python3", "-S", "-c"]
    assert argv[4:] == ["8000", "/health/live", "/health/ready"]
    assert probes.parse_http_probe("/health/live 200\n/health/ready 503\n") == {
        "/health/live": "200", "/health/ready": "503"}
    assert probes.parse_http_probe("garbage\n") == {}


def test_docker_builders_quote_every_word_and_keep_their_argv():
    from ops.commands import docker

    assert docker.exec_in("c1", ["psql", "-c", "select 1; drop"], stdin=True).argv == [
        "docker", "exec", "-i", "c1", "psql", "-c", "select 1; drop"]
    assert str(docker.build("t:1", "/ctx dir", BASE_IMAGE="b:2")) == (
        "docker build --quiet --tag t:1 --build-arg BASE_IMAGE=b:2 '/ctx dir'")
    assert docker.run_offline("pg:15", ["pg_restore", "-l"], stdin=True).argv == [
        "docker", "run", "--rm", "-i", "--network", "none", "--label", "ops.role=backup-check",
        "--entrypoint", "pg_restore", "pg:15", "-l"]
    assert docker.run_detached("pg:15", "d1", "ops.role=restore-drill", {"A": "x y"}).argv[-3:] == [
        "-e", "A=x y", "pg:15"]
    assert str(docker.remove("a", "b", volumes=True)) == "docker rm -f -v a b"
    assert str(docker.login("reg:5000", "u")) == "docker login --username u --password-stdin reg:5000"
