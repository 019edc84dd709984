"""Secret rotation's pure parts: what can be rotated, the servers' scripts (passwords on
stdin only), the SCRAM verifier, and where a rotated value is kept."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from ops.errors import OpsError
from ops.rotation import model, protocol, servers

CONFIG = {
    "services": {
        "db": {"labels": {"ops.role": "database"}, "secrets": [{"source": "db_pw"}],
               "environment": {"POSTGRES_USER": "app", "POSTGRES_DB": "appdb"}},
        "cache": {"labels": {"ops.role": "cache"}, "secrets": [{"source": "cache_pw"}]},
        "mq": {"labels": {"ops.role": "broker"}, "secrets": [{"source": "mq_pw"}],
               "environment": {"RABBITMQ_DEFAULT_USER": "app"}},
        "api": {"labels": {"ops.role": "app"},
                "secrets": [{"source": s} for s in ("db_pw", "cache_pw", "mq_pw", "tls")]},
        "exporter": {"secrets": [{"source": "db_pw"}]},
        "grafana": {"secrets": [{"source": "ui_pw"}]},
    },
    "secrets": {"db_pw": {"environment": "DB_PASSWORD"}, "cache_pw": {"environment": "CACHE_PASSWORD"},
                "mq_pw": {"environment": "MQ_PASSWORD"}, "tls": {"file": "/x"},
                "ui_pw": {"environment": "UI_PASSWORD"}},
}


def test_a_rotatable_secret_has_one_server_and_its_clients():
    r = model.pick(CONFIG, "db_pw")
    assert r.variable == "DB_PASSWORD" and r.clients == ("api", "exporter")
    assert r.server == servers.Server("database", "db", "app", "appdb")
    assert model.pick(CONFIG, "cache_pw").server.user == "default"
    # as .env spells it: the variable the secret's value comes from
    assert model.pick(CONFIG, "DB_PASSWORD") == r and model.pick(CONFIG, "MQ_PASSWORD").key == "mq_pw"
    assert model.pick(CONFIG, "mq_pw").server == servers.Server("broker", "mq", "app")


@pytest.mark.parametrize(("key", "message"), [
    ("nope", "unknown secret 'nope' \\(rotatable: cache_pw, db_pw, mq_pw\\)"),
    ("tls", "a file or an existing Swarm secret"),
    ("ui_pw", "no server reads it"),
])
def test_what_cannot_be_rotated_says_why(key, message):
    with pytest.raises(ValueError, match=message):
        model.pick(CONFIG, key)


def test_a_server_that_does_not_name_its_user_is_refused():
    config = {"services": {"db": {"labels": {"ops.role": "database"}, "secrets": ["pw"]}},
              "secrets": {"pw": {"environment": "PW"}}}
    assert "does not say its user (POSTGRES_USER)" in model.rotations(config)["pw"]


def test_the_scram_verifier_is_what_postgres_checks_a_login_against():
    salt = b"0123456789abcdef"
    v = servers.scram_sha256("s3cret", salt=salt)
    head, keys = v.split("$", 1)[1].split("$")
    iterations, salt_b64 = head.split(":")
    stored, server_key = (base64.b64decode(x) for x in keys.split(":"))
    assert iterations == "4096" and base64.b64decode(salt_b64) == salt
    # A client proving the right password: the server recovers ClientKey and checks it.
    salted = hashlib.pbkdf2_hmac("sha256", b"s3cret", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    auth_message = b"n=,r=abc,r=abcdef,s=...,i=4096,c=biws,r=abcdef"
    signature = hmac.new(stored, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    assert hashlib.sha256(recovered).digest() == stored
    assert server_key == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert servers.scram_sha256("s3cret") != servers.scram_sha256("s3cret")  # a fresh salt


@pytest.mark.parametrize("server", [servers.Server("database", "db", "app", "appdb"),
                                    servers.Server("cache", "cache", "default"),
                                    servers.Server("broker", "mq", "app")])
def test_no_password_is_ever_in_an_argument_list(server):
    old, new = "OLD-very-secret", "NEW-very-secret"
    scripts = [servers.set_password(server, old, new), servers.restore_password(server, old, new),
               servers.login(server, new), servers.login(server, old)]
    dropped = servers.drop_password(server, keep=new, drop=old)
    scripts += [dropped] if dropped else []
    for s in scripts:
        argv = " ".join(s.command("c0ffee").argv)
        assert old not in argv and new not in argv, s
    # Postgres never even receives the plain password: a verifier.
    if server.role == "database":
        sql = servers.set_password(server, old, new).stdin
        assert new not in sql and "SCRAM-SHA-256$4096:" in sql
    assert (dropped is not None) is (server.role == "cache")  # only Redis holds two


def test_names_put_in_sql_or_argv_must_be_plain():
    with pytest.raises(ValueError, match="not a plain name"):
        servers.set_password(servers.Server("database", "db", "app; drop table x", "app"), "a", "b")
    with pytest.raises(ValueError, match="not a plain name"):
        servers.login(servers.Server("broker", "mq", "$(id)"), "a")


def test_the_new_value_goes_where_the_old_one_came_from(tmp_path):
    assert protocol.env_file({"PW": ".env.sandbox"}, "PW", tmp_path, "sandbox") == tmp_path / ".env.sandbox"
    assert protocol.env_file({"PW": ".env"}, "PW", tmp_path, "sandbox") == tmp_path / ".env"
    with pytest.raises(OpsError, match="PW comes from the process environment: a rotated value could "
                                       r"not be kept there; move it to \.env\.sandbox \(or \.env\) first"):
        protocol.env_file({"PW": "environment"}, "PW", tmp_path, "sandbox")
    with pytest.raises(OpsError, match="PW is not set"):
        protocol.env_file({}, "PW", tmp_path, "sandbox")


def test_the_journal_keeps_both_values_unreadable_to_others(tmp_path):
    j = protocol.journal_for(tmp_path, "local", "db_pw")
    assert j.read() is None
    j.write({"old": "a", "new": "b"})
    assert j.read() == {"old": "a", "new": "b"} and oct(j.path.stat().st_mode & 0o777) == "0o600"
    assert oct(j.path.parent.stat().st_mode & 0o777) == "0o700"
    Path(j.path).write_text("{not json")
    with pytest.raises(OpsError, match="is not a rotation journal"):
        j.read()
    j.remove()
    assert j.read() is None


# -- the protocol's order and its undo, against a place that records what it is asked --

class Place:
    """A server that knows which passwords are valid, and clients that can fail."""

    where = "a test place"

    def __init__(self, valid: set[str], fail_move: Exception | None = None):
        self.valid, self.fail_move, self.calls, self.clients_on = valid, fail_move, [], None

    def exec(self, script, check=True):
        self.calls.append(script.what)
        lines = script.stdin.splitlines()
        if script.what.startswith("log in"):
            ok = lines[0] in self.valid
        elif script.what.startswith("set the new"):  # Postgres: one password, by its verifier
            verifier = script.stdin.split("'")[1]
            salt = base64.b64decode(verifier.split("$")[1].split(":")[1])
            self.valid = {p for p in ("OLD", "NEW") if servers.scram_sha256(p, salt=salt) == verifier}
            ok = True
        else:
            ok = True
        if not ok and check:
            raise OpsError(f"{script.what} failed")
        return ok

    def move_clients(self, rotation, value, out):
        self.calls.append(f"move to {value}")
        if self.fail_move:
            raise self.fail_move
        self.clients_on = value
        return ["api"]

    def move_back(self, rotation, value, out):
        self.calls.append(f"move back to {value}")
        self.clients_on = value


@pytest.fixture
def rotation_setup(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "new_value", lambda: "NEW")
    env = tmp_path / ".env"
    env.write_text("# keep me\nDB_PASSWORD=OLD\nOTHER=x\n")
    env.chmod(0o600)
    return model.pick(CONFIG, "db_pw"), env, protocol.journal_for(tmp_path, "local", "db_pw")


def test_a_rotation_changes_the_server_then_the_file_then_the_clients(rotation_setup):
    import io

    rotation, env, journal = rotation_setup
    place = Place({"OLD"})
    rec = protocol.rotate(place, rotation, "OLD", env, journal, out=io.StringIO())
    assert place.calls == ["log in as app", "set the new password of role app", "log in as app",
                           "move to NEW", "log in as app"]
    assert env.read_text() == "# keep me\nDB_PASSWORD=NEW\nOTHER=x\n" and env.stat().st_mode & 0o777 == 0o600
    assert place.valid == {"NEW"} and place.clients_on == "NEW" and journal.read() is None
    assert rec["clients"] == ["api"] and "NEW" not in str(rec) and "OLD" not in str(rec)


def test_a_current_value_that_does_not_log_in_changes_nothing(rotation_setup):
    import io

    rotation, env, journal = rotation_setup
    with pytest.raises(OpsError, match=r"does not log in to db on a test place \(log in as app failed\): "
                                       "nothing was changed"):
        protocol.rotate(Place({"SOMETHING ELSE"}), rotation, "OLD", env, journal, out=io.StringIO())
    assert "DB_PASSWORD=OLD" in env.read_text() and journal.read() is None


def test_clients_that_cannot_move_put_everything_back(rotation_setup):
    import io

    rotation, env, journal = rotation_setup
    place, out = Place({"OLD"}, fail_move=OpsError("api: new replicas unhealthy")), io.StringIO()
    with pytest.raises(OpsError, match="new replicas unhealthy"):
        protocol.rotate(place, rotation, "OLD", env, journal, out=out)
    assert place.valid == {"OLD"} and place.clients_on == "OLD"  # the server and clients back
    assert "DB_PASSWORD=OLD" in env.read_text() and journal.read() is None
    assert "nothing changed" in out.getvalue()


def test_a_failure_after_users_moved_keeps_the_journal_and_finishes_on_the_next_run(rotation_setup):
    import io

    rotation, env, journal = rotation_setup
    place = Place({"OLD"}, fail_move=protocol.PastSwitch("prune failed"))
    with pytest.raises(OpsError, match="prune failed; the clients users reach already use the new value"):
        protocol.rotate(place, rotation, "OLD", env, journal, out=io.StringIO())
    assert journal.read()["new"] == "NEW" and "DB_PASSWORD=NEW" in env.read_text()
    # The next run takes the journal's values (the file already says NEW): it finishes.
    place.fail_move, out = None, io.StringIO()
    protocol.rotate(place, rotation, "NEW", env, journal, out=out)
    assert "finishing the rotation of db_pw" in out.getvalue()
    assert place.clients_on == "NEW" and journal.read() is None and place.valid == {"NEW"}
