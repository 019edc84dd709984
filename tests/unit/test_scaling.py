from pathlib import Path

import pytest

from ops import scaling
from ops.errors import OpsError
from ops.facts.compose import ComposeService, Model, parse_model

FIX = Path(__file__).resolve().parent.parent / "fixtures"
MODEL = parse_model((FIX / "compose-config-v2.40.json").read_text())


@pytest.mark.parametrize("spec,expected", [
    ("api=3", {"api": 3}),
    ("api=0", {"api": 0}),
    ("api=3,worker=2", {"api": 3, "worker": 2}),
    ("api=3 worker=2", {"api": 3, "worker": 2}),
    ("web.v2=1", {"web.v2": 1}),
])
def test_parse_spec(spec, expected):
    assert scaling.parse_spec(spec) == expected


@pytest.mark.parametrize("spec,message", [
    ("", "nothing to scale"),
    ("api", "expected SERVICE=N"),
    ("api=-1", "must be >= 0"),
    ("api=two", "bad replica count"),
    ("api=1.5", "bad replica count"),
    ("api=", "bad replica count"),
    ("api=51", "over the limit"),
    ("api=1,api=2", "given twice"),
    ("=3", "bad service name"),
    ("api;rm -rf /=3", "bad (service name|scale argument)"),
    ("$(touch /tmp/x)=1", "bad (service name|scale argument)"),
    ("api;id=3", "bad service name"),
    ("api`id`=2", "bad service name"),
    ("api=2;reboot", "bad replica count"),
    ("api=2|cat", "bad replica count"),
    ("../etc=1", "bad service name"),
    ("api=3&&x", "bad replica count"),
])
def test_parse_spec_rejects(spec, message):
    with pytest.raises(OpsError, match=message):
        scaling.parse_spec(spec)


def test_check_accepts_stateless_api():
    scaling.check(MODEL, {"api": 3})


@pytest.mark.parametrize("name,message", [
    ("app-db", "stateful"), ("auth-db", "stateful"), ("redis", "stateful"),
    ("gateway", "fixed host port"), ("nope", "unknown service"),
])
def test_check_refuses(name, message):
    with pytest.raises(OpsError, match=message):
        scaling.check(MODEL, {name: 2})


def test_check_refuses_container_name():
    m = Model("p", {"w": ComposeService("w", container_name="fixed")})
    with pytest.raises(OpsError, match="container_name"):
        scaling.check(m, {"w": 2})
