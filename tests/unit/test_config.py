import pytest

from ops import config
from ops.errors import OpsError

STACK = {"project": "opsdemo", "compose_files": ["compose.yaml"],
         "vars": {"GATEWAY_PORT": "8080", "GATEWAY_BIND": "127.0.0.1"}}


@pytest.fixture
def root(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    image: ${A_IMAGE:-x}\n    ports: ['${GATEWAY_PORT}:80']\n"
        "    command: echo $${NOT_A_VAR}\n")
    return tmp_path


def test_parse_env_text_plain_quoted_export_comments():
    text = "# c\nA=1\n\nexport B=\"two words\"\nC='x#y'\nD=\n"
    assert config.parse_env_text(text, ".env") == {"A": "1", "B": "two words", "C": "x#y", "D": ""}


@pytest.mark.parametrize("text,where", [
    ("A=1\nthis is not a line\n", ".env:2:"),
    ("A=1\n\n\nB\n", ".env:4:"),
    ("A=1\nB='unterminated\n", ".env:2:"),
])
def test_malformed_env_names_file_and_line(text, where):
    with pytest.raises(OpsError) as exc:
        config.parse_env_text(text, ".env")
    assert str(exc.value).startswith(where)


def test_malformed_line_does_not_echo_a_secret():
    with pytest.raises(OpsError) as exc:
        config.parse_env_text("PASSWORD hunter2-very-secret\n", ".env")
    assert "hunter2" not in str(exc.value)


def test_layering_precedence(root):
    (root / ".env").write_text("GATEWAY_PORT=9000\nA_IMAGE=from-dotenv\nAPP_DB_PASSWORD=s1\n")
    (root / ".env.staging").write_text("GATEWAY_PORT=9100\n")
    envs = {"staging": {"vars": {"GATEWAY_BIND": "0.0.0.0"}}}
    s = config.load(STACK, envs, "staging", root=root, environ={"A_IMAGE": "from-env", "UNRELATED": "x"},
                    flags={})
    assert s.variables["GATEWAY_PORT"] == "9100" and s.sources["GATEWAY_PORT"] == ".env.staging"
    assert s.variables["GATEWAY_BIND"] == "0.0.0.0"
    assert s.sources["GATEWAY_BIND"] == "invoke.yaml envs.staging"
    assert s.variables["A_IMAGE"] == "from-env" and s.sources["A_IMAGE"] == "environment"
    assert "UNRELATED" not in s.variables
    s2 = config.load(STACK, envs, "staging", root=root, environ={}, flags={"GATEWAY_PORT": "1"})
    assert s2.variables["GATEWAY_PORT"] == "1" and s2.sources["GATEWAY_PORT"] == "flag"
    s3 = config.load(STACK, envs, "local", root=root, environ={})
    assert s3.variables["GATEWAY_PORT"] == "9000" and s3.sources["GATEWAY_PORT"] == ".env"


def test_project_name_from_env_and_validated(root):
    s = config.load(STACK, {}, "local", root=root, environ={"COMPOSE_PROJECT_NAME": "opstest-1"})
    assert s.project == "opstest-1"
    with pytest.raises(OpsError, match="invalid compose project name"):
        config.load(STACK, {}, "local", root=root, environ={"COMPOSE_PROJECT_NAME": "Bad;Name"})


def test_unknown_and_invalid_env(root):
    with pytest.raises(OpsError, match=r"unknown environment 'prod' \(known: local\)"):
        config.load(STACK, {}, "prod", root=root, environ={})
    for bad in ("../etc", "a/b", "x;rm -rf", "UPPER", ""):
        with pytest.raises(OpsError, match="invalid environment name"):
            config.load(STACK, {}, bad, root=root, environ={})


def test_env_file_makes_env_known(root):
    (root / ".env.qa").write_text("X=1\n")
    assert config.known_envs({"staging": {}}, root) == ["local", "qa", "staging"]


def test_malformed_dotenv_is_reported_through_load(root):
    (root / ".env").write_text("OK=1\nnot valid\n")
    with pytest.raises(OpsError, match=r"\.env:2: cannot parse"):
        config.load(STACK, {}, "local", root=root, environ={})


def test_masking():
    values = {"APP_DB_PASSWORD": "p", "JWT_SECRET": "s", "API_KEY": "k", "SSH_KEY_FILE": "f",
              "GATEWAY_PORT": "8080", "KEYBOARD": "x", "EMPTY_PASSWORD": ""}
    m = config.masked(values)
    assert m["APP_DB_PASSWORD"] == m["JWT_SECRET"] == m["API_KEY"] == m["SSH_KEY_FILE"] == config.MASK
    assert m["GATEWAY_PORT"] == "8080" and m["KEYBOARD"] == "x" and m["EMPTY_PASSWORD"] == ""


def test_compose_variables_skip_escapes():
    assert config.compose_variables("${A} ${B:-x} ${C:?err} $${D} $$E") == {"A", "B", "C"}


def test_require_names_missing(root):
    s = config.load(STACK, {}, "local", root=root, environ={})
    with pytest.raises(OpsError, match="missing settings: APP_DB_PASSWORD"):
        config.require(s, ["APP_DB_PASSWORD"])
