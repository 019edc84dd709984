import stat

import pytest

from ops import envfile
from ops.errors import OpsError


def test_render_replaces_each_marker_with_a_fresh_token():
    tokens = iter(["t1", "t2"])
    out = envfile.render_from_example("A=__RANDOM__\nB=__RANDOM__\nC=x\n", lambda: next(tokens))
    assert out == "A=t1\nB=t2\nC=x\n"


def test_set_values_keeps_comments_and_order():
    text = "# head\nA=1\nexport B=2\n# tail\n"
    assert envfile.set_values(text, {"B": "3", "C": "4"}) == "# head\nA=1\nB=3\n# tail\nC=4\n"


def test_init_creates_0600_with_random_secrets(tmp_path):
    (tmp_path / ".env.example").write_text("PASS=__RANDOM__\nPORT=8080\n")
    assert envfile.init(tmp_path) is True
    env = tmp_path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    text = env.read_text()
    assert "__RANDOM__" not in text and "PORT=8080" in text
    assert len(text.splitlines()[0].split("=", 1)[1]) >= 24
    assert envfile.init(tmp_path) is False  # idempotent: an existing .env is kept
    assert env.read_text() == text


def test_init_adds_secrets_the_example_gained_and_keeps_the_rest(tmp_path):
    """An upgrade adds a service with a secret: the existing .env gets a fresh one, and
    no value the user has is touched."""
    (tmp_path / ".env.example").write_text("PASS=__RANDOM__\nPORT=8080\nNEW=__RANDOM__\n")
    env = tmp_path / ".env"
    env.write_text("PASS=mine\nPORT=9000\n")
    env.chmod(0o600)
    assert envfile.init(tmp_path) == ["NEW"]
    lines = env.read_text().splitlines()
    assert lines[:2] == ["PASS=mine", "PORT=9000"] and len(lines[2].split("=", 1)[1]) >= 24
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert envfile.init(tmp_path) is False
    assert envfile.new_secrets("A=__RANDOM__\nB=x\n", {"A": ""}) == {}  # present, even empty


def test_init_refuses_broken_existing_env(tmp_path):
    (tmp_path / ".env").write_text("A=1\nbroken line\n")
    with pytest.raises(OpsError, match=r"\.env:2"):
        envfile.init(tmp_path)


def test_update_preserves_mode_and_other_lines(tmp_path):
    env = tmp_path / ".env"
    env.write_text("A=1\nB=2\n")
    env.chmod(0o640)
    envfile.update(env, {"B": "x"})
    assert env.read_text() == "A=1\nB=x\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".env.*.tmp"))
