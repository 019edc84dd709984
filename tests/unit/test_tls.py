"""The gateway's certificates: the CA and leaf builders, what a certificate says, when a
self-signed one is issued again, and which environments may have one at all."""

from __future__ import annotations

import datetime as dt
import io
import ssl
import stat

import pytest

from ops import gateway_tls, tls
from ops.errors import OpsError

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca():
    return tls.new_ca("test CA", NOW)


def test_a_leaf_is_valid_for_its_names_and_chains_to_its_ca(ca, tmp_path):
    cert, key = tls.issue(*ca, ["localhost", "127.0.0.1", "opsdemo_gateway"], NOW)
    got = tls.info(cert)
    assert got.names == ("localhost", "opsdemo_gateway", "127.0.0.1")
    assert got.issuer == tls.info(ca[0]).subject and not got.is_ca and tls.info(ca[0]).is_ca
    assert 89 < got.days_left(NOW) <= tls.LEAF_DAYS
    tls.check_pair(cert, key)
    # Python's own TLS stack accepts the chain, as a client would (a server context
    # loading the pair and a client context trusting the CA).
    (tmp_path / "ca.crt").write_text(ca[0])
    ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")


def test_a_leaf_never_outlives_its_ca():
    short = tls.new_ca("short", NOW - dt.timedelta(days=tls.CA_DAYS - 10))
    cert, _ = tls.issue(*short, ["localhost"], NOW)
    assert tls.info(cert).not_after == tls.info(short[0]).not_after


def test_a_key_of_another_certificate_is_refused(ca):
    cert, _ = tls.issue(*ca, ["a"], NOW)
    _, other = tls.issue(*ca, ["a"], NOW)
    with pytest.raises(ValueError, match="does not belong"):
        tls.check_pair(cert, other)
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        tls.check_pair(cert, "nonsense")
    with pytest.raises(ValueError, match="not a PEM certificate"):
        tls.info("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize(("names", "host", "ok"), [
    (("staging.example.com",), "staging.example.com", True),
    (("Staging.Example.com",), "staging.example.com.", True),
    (("*.example.com",), "staging.example.com", True),
    (("*.example.com",), "a.staging.example.com", False),
    (("*.example.com",), "example.com", False),
    (("127.0.0.1",), "127.0.0.1", True),
    (("localhost",), "127.0.0.1", False),
])
def test_covers(names, host, ok):
    assert tls.covers(names, host) is ok


def test_a_self_signed_leaf_is_issued_again_only_when_it_no_longer_fits(ca):
    authority = tls.info(ca[0])
    fits = tls.info(tls.issue(*ca, ["localhost", "gateway"], NOW)[0])
    assert tls.reissue_reason(None, ["localhost"], authority, NOW) == "no certificate yet"
    assert tls.reissue_reason(fits, ["localhost"], authority, NOW) is None
    assert tls.reissue_reason(fits, ["localhost", "x_gateway"], authority, NOW) == "not valid for x_gateway"
    later = NOW + dt.timedelta(days=tls.LEAF_DAYS - tls.RENEW_DAYS + 1)
    assert tls.reissue_reason(fits, ["localhost"], authority, later).startswith("expires in 29")
    other = tls.info(tls.new_ca("other", NOW)[0])
    assert tls.reissue_reason(fits, ["localhost"], other, NOW) == "issued by another CA"


@pytest.mark.parametrize(("days", "level"), [(60, "ok"), (21, "ok"), (20.9, "warn"), (7, "warn"),
                                             (6.9, "fail"), (-1, "fail")])
def test_expiry_levels(days, level):
    assert tls.expiry_level(days) == level


def test_expiry_is_said_in_dates_and_days(ca):
    cert = tls.info(tls.issue(*ca, ["a"], NOW)[0])
    assert tls.describe_expiry(cert, NOW) == "valid until 2027-03-04 (90 days left)"
    assert tls.describe_expiry(cert, NOW + dt.timedelta(days=100)) == "expired on 2027-03-04"


# -- which environments get which certificate ------------------------------------------

@pytest.mark.parametrize("url", [None, "https://127.0.0.1:8443", "https://localhost"])
def test_this_machine_gets_a_self_signed_certificate_by_default(url):
    assert gateway_tls.settings("sandbox", {}, url) == {"self_signed": True}


def test_a_public_url_needs_a_certificate_or_an_explicit_self_signed():
    with pytest.raises(OpsError, match=r"staging \(https://s.example.com\) has no certificate"):
        gateway_tls.settings("staging", {}, "https://s.example.com")
    assert gateway_tls.settings("staging", {"tls": {"self_signed": True}}, "https://s.example.com") \
        == {"self_signed": True}
    assert gateway_tls.settings("staging", {"tls": {"cert": "c.pem", "key": "k.pem"}},
                                "https://s.example.com") == {"cert": "c.pem", "key": "k.pem"}


@pytest.mark.parametrize(("tls_cfg", "message"), [
    ("yes", "must be a mapping"),
    ({"cert": "c.pem"}, "give both cert and key"),
    ({"cert": "c", "key": "k", "self_signed": True}, "not both"),
    ({"crt": "c"}, "unknown key"),
])
def test_bad_tls_settings_are_one_line(tls_cfg, message):
    with pytest.raises(OpsError, match=message):
        gateway_tls.settings("staging", {"tls": tls_cfg}, "https://s.example.com")


def test_the_self_signed_leaf_is_kept_until_it_must_change(tmp_path, monkeypatch):
    monkeypatch.delenv("OPS_TLS_DIR", raising=False)
    out = io.StringIO()
    first = gateway_tls.self_signed(tmp_path, "local", ["localhost", "gateway"], out)
    assert "made a local CA" in out.getvalue()
    assert stat.S_IMODE((tmp_path / ".tls" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".tls" / "local" / "gateway.key").stat().st_mode) == 0o600
    assert first.trust == str(tmp_path / ".tls" / "ca.crt")
    again = gateway_tls.self_signed(tmp_path, "local", ["gateway"], out)
    assert again.cert_pem == first.cert_pem and again.version == first.version
    # A new name: issued again, keeping the names it had (two apps sharing it).
    more = gateway_tls.self_signed(tmp_path, "local", ["other_gateway"], out)
    assert more.version != first.version
    assert set(more.info.names) == {"localhost", "gateway", "other_gateway"}
    assert "issued again (not valid for other_gateway)" in out.getvalue()
    read_only = gateway_tls.self_signed(tmp_path, "local", ["x"], out, issue=False)
    assert read_only.cert_pem == more.cert_pem  # issue=False never issues
    assert gateway_tls.self_signed(tmp_path, "sandbox", ["x"], out, issue=False) is None


def test_a_users_certificate_is_checked_not_changed(tmp_path, ca):
    cert, key = tls.issue(*ca, ["*.example.com"], dt.datetime.now(dt.UTC))
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    (tmp_path / "ca.pem").write_text(ca[0])
    cfg = {"tls": {"cert": "c.pem", "key": "k.pem", "ca": "ca.pem"}}
    got = gateway_tls.material(tmp_path, "staging", cfg, "https://s.example.com", [], io.StringIO())
    assert got.cert_pem == cert and got.trust == str(tmp_path / "ca.pem")
    with pytest.raises(OpsError, match=r"is for \*\.example\.com, not s\.example\.org"):
        gateway_tls.material(tmp_path, "staging", cfg, "https://s.example.org", [], io.StringIO())
    (tmp_path / "k.pem").write_text(tls.issue(*ca, ["x"], NOW)[1])
    with pytest.raises(OpsError, match="does not belong"):
        gateway_tls.material(tmp_path, "staging", cfg, "https://s.example.com", [], io.StringIO())
    with pytest.raises(OpsError, match="cannot read"):
        gateway_tls.material(tmp_path, "staging", {"tls": {"cert": "no.pem", "key": "k.pem"}},
                             "https://s.example.com", [], io.StringIO())
    old, old_key = tls.issue(*ca, ["s.example.com"], NOW - dt.timedelta(days=200))
    (tmp_path / "c.pem").write_text(old)
    (tmp_path / "k.pem").write_text(old_key)
    with pytest.raises(OpsError, match="expired on"):
        gateway_tls.material(tmp_path, "staging", cfg, "https://s.example.com", [], io.StringIO())
    assert not (tmp_path / ".tls").exists()  # nothing issued for a user's certificate
