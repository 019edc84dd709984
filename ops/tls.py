"""Certificates for the gateway (pure): a local CA, the leaf it issues, and what a
certificate says (names, issuer, expiry) and whether it still fits.

Built on `cryptography` (already installed as paramiko's dependency): no openssl CLI
whose flags differ between Debian's OpenSSL and a Mac's LibreSSL, no output to parse.
Keys are ECDSA P-256: every TLS 1.2+ client accepts them and they are made in
milliseconds."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 90  # short, as public CAs do: renewal is automatic here
RENEW_DAYS = 30  # a self-signed leaf is issued again when it has less left than this
WARN_DAYS = 21  # health and the alert: a certificate expiring sooner is a warning
CRITICAL_DAYS = 7  # ... and this close, a failure


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    names: tuple[str, ...]  # subjectAltName: DNS names and IP addresses
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str  # sha256, hex
    is_ca: bool

    def days_left(self, now: dt.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ops-toolkit"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(names) -> x509.SubjectAlternativeName:
    out = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """KeyUsage with only `allowed` set (the class wants every flag named)."""
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{f: f in allowed for f in flags})


def new_ca(common_name: str, now: dt.datetime) -> tuple[str, str]:
    """(certificate PEM, key PEM) of a CA that may only issue leaves (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage("digital_signature", "key_cert_sign", "crl_sign"), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def issue(ca_cert_pem: str, ca_key_pem: str, names: list[str], now: dt.datetime,
          days: int = LEAF_DAYS, client: bool = False) -> tuple[str, str]:
    """(certificate PEM, key PEM) of a server certificate for `names` (the first is the
    common name), signed by the CA; `client`: also for TLS client authentication (a peer
    that both serves and connects, as pgBackRest's servers do)."""
    if not names:
        raise ValueError("a certificate needs at least one name")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(names[0]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_san(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  *([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])]),
                           critical=False)
            .add_extension(_key_usage("digital_signature"), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def info(pem: str | bytes) -> CertInfo:
    """What the first certificate of a PEM text says. ValueError when it is not one."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError("not a PEM certificate") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple([*san.get_values_for_type(x509.DNSName),
                       *(str(a) for a in san.get_values_for_type(x509.IPAddress))])
    except x509.ExtensionNotFound:
        names = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                    names=names, not_before=cert.not_valid_before_utc,
                    not_after=cert.not_valid_after_utc,
                    fingerprint=cert.fingerprint(hashes.SHA256()).hex(), is_ca=is_ca)


def check_pair(cert_pem: str, key_pem: str) -> None:
    """ValueError unless the key is the certificate's (a swapped or stale key file would
    make nginx refuse to start, or serve nothing)."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({exc})") from None
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, raw)
            != cert.public_key().public_bytes(serialization.Encoding.DER, raw)):
        raise ValueError("the key does not belong to the certificate")


def covers(names: tuple[str, ...], host: str) -> bool:
    """Whether a certificate for `names` is valid for `host` (one-label wildcards)."""
    host = host.lower().rstrip(".")
    for n in (x.lower() for x in names):
        if n == host:
            return True
        if n.startswith("*.") and "." in host and host.split(".", 1)[1] == n[2:]:
            return True
    return False


def reissue_reason(cert: CertInfo | None, names: list[str], ca: CertInfo,
                   now: dt.datetime) -> str | None:
    """Why a self-signed leaf must be issued again, or None while it still fits."""
    if cert is None:
        return "no certificate yet"
    if cert.issuer != ca.subject:
        return "issued by another CA"
    missing = [n for n in names if not covers(cert.names, n)]
    if missing:
        return f"not valid for {', '.join(missing)}"
    if cert.days_left(now) < RENEW_DAYS:
        return f"expires in {cert.days_left(now):.0f} days"
    return None


def expiry_level(days_left: float) -> str:
    """ok | warn | fail for a certificate with `days_left` of validity."""
    if days_left < CRITICAL_DAYS:
        return "fail"
    if days_left < WARN_DAYS:
        return "warn"
    return "ok"


def describe_expiry(cert: CertInfo, now: dt.datetime) -> str:
    days = cert.days_left(now)
    when = cert.not_after.strftime("%Y-%m-%d")
    if days < 0:
        return f"expired on {when}"
    return f"valid until {when} ({days:.0f} days left)"
