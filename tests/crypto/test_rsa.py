"""gspauth.crypto._rsa: GSTN certificate loading and RSA PKCS#1 v1.5 app-key encryption."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from gspauth.crypto import GSTNCertificate, encrypt_app_key, generate_app_key, load_certificate
from gspauth.errors import CertificateError, CertificateExpired, InvalidKey

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def key_pair() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, start: dt.datetime, end: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "GSTN test sandbox")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(private_key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def valid_cert(key_pair: rsa.RSAPrivateKey) -> x509.Certificate:
    return _cert(key_pair, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365))


@pytest.fixture(scope="module")
def expired_cert(key_pair: rsa.RSAPrivateKey) -> x509.Certificate:
    return _cert(key_pair, NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=35))


def _decrypt(private_key: rsa.RSAPrivateKey, wire: str) -> bytes:
    raw = base64.b64decode(wire, validate=True)
    assert len(raw) == 256
    return private_key.decrypt(raw, padding.PKCS1v15())


@pytest.mark.parametrize("encoding", [serialization.Encoding.DER, serialization.Encoding.PEM])
def test_round_trip_through_certificate(
    key_pair: rsa.RSAPrivateKey, valid_cert: x509.Certificate, encoding: serialization.Encoding
) -> None:
    blob = valid_cert.public_bytes(encoding)
    cert = load_certificate(blob)
    assert isinstance(cert, GSTNCertificate)
    assert cert.subject == "CN=GSTN test sandbox"
    assert cert.not_valid_before == valid_cert.not_valid_before_utc
    assert cert.not_valid_after == valid_cert.not_valid_after_utc
    assert len(cert.fingerprint_sha256) == 64
    app_key = generate_app_key()
    wire = encrypt_app_key(cert, app_key)
    assert len(wire) == 344  # RSA-2048, spec §0
    assert _decrypt(key_pair, wire) == app_key
    # randomised padding: same key, different ciphertext, same plaintext
    again = encrypt_app_key(cert, app_key)
    assert again != wire and _decrypt(key_pair, again) == app_key


def test_pem_as_str_and_with_surrounding_whitespace(key_pair: rsa.RSAPrivateKey, valid_cert: x509.Certificate) -> None:
    pem = valid_cert.public_bytes(serialization.Encoding.PEM).decode()
    for data in (pem, "\n  " + pem + "\n\n", pem.encode()):
        cert = load_certificate(data)
        assert _decrypt(key_pair, encrypt_app_key(cert, bytes(range(32)))) == bytes(range(32))


@pytest.mark.parametrize("encoding", [serialization.Encoding.DER, serialization.Encoding.PEM])
def test_bare_public_key(key_pair: rsa.RSAPrivateKey, encoding: serialization.Encoding) -> None:
    blob = key_pair.public_key().public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = load_certificate(blob)
    assert cert.not_valid_before is None and cert.not_valid_after is None
    assert cert.subject == "(bare public key)"
    assert cert.is_valid_at(NOW + dt.timedelta(days=10_000))
    app_key = generate_app_key()
    assert _decrypt(key_pair, encrypt_app_key(cert, app_key)) == app_key


def test_expired_certificate_is_refused_unless_allowed(
    key_pair: rsa.RSAPrivateKey, expired_cert: x509.Certificate
) -> None:
    cert = load_certificate(expired_cert.public_bytes(serialization.Encoding.DER))
    assert not cert.is_valid_at(NOW)
    with pytest.raises(CertificateExpired) as info:
        encrypt_app_key(cert, bytes(32))
    message = str(info.value)
    assert "valid from" in message and "TEC4002" in message
    assert cert.fingerprint_sha256[:16] in message
    assert isinstance(info.value, CertificateError)
    wire = encrypt_app_key(cert, bytes(32), allow_expired=True)
    assert _decrypt(key_pair, wire) == bytes(32)
    # an explicit `now` inside the window is accepted
    inside = NOW - dt.timedelta(days=100)
    assert _decrypt(key_pair, encrypt_app_key(cert, bytes(32), now=inside)) == bytes(32)


def test_not_yet_valid_certificate_is_refused(key_pair: rsa.RSAPrivateKey) -> None:
    future = _cert(key_pair, NOW + dt.timedelta(days=3), NOW + dt.timedelta(days=300))
    cert = load_certificate(future.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CertificateExpired):
        cert.check_valid()
    with pytest.raises(CertificateExpired):
        encrypt_app_key(cert, bytes(32))
    cert.check_valid(NOW + dt.timedelta(days=4))


def test_app_key_must_be_32_bytes(valid_cert: x509.Certificate) -> None:
    cert = load_certificate(valid_cert.public_bytes(serialization.Encoding.DER))
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(InvalidKey, match=f"app_key must be 32 bytes, got {len(bad)}"):
            encrypt_app_key(cert, bad)
    with pytest.raises(TypeError):
        encrypt_app_key(cert, "k" * 32)  # type: ignore[arg-type]


def test_unusable_inputs() -> None:
    with pytest.raises(CertificateError):
        load_certificate(b"not a certificate")
    with pytest.raises(CertificateError):
        load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateError, match="RSA"):
        load_certificate(_cert(ec_key, NOW, NOW + dt.timedelta(days=1)).public_bytes(serialization.Encoding.DER))
    ec_pub = ec_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(CertificateError, match="RSA"):
        load_certificate(ec_pub)


def test_repr_hides_the_key_object(valid_cert: x509.Certificate) -> None:
    cert = load_certificate(valid_cert.public_bytes(serialization.Encoding.DER))
    text = repr(cert)
    assert "public_key" not in text and "RSAPublicKey" not in text
    assert cert.fingerprint_sha256 in text


def test_non_ascii_pem_text_is_a_certificate_error() -> None:
    from gspauth.crypto import load_certificate
    from gspauth.errors import CertificateError

    with pytest.raises(CertificateError, match="ASCII"):
        load_certificate("-----BEGIN CERTIFICATE-----\nMIIé\n-----END CERTIFICATE-----\n")


def test_naive_datetime_is_refused_clearly() -> None:
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric import rsa as _rsa_keys

    from gspauth.crypto import GSTNCertificate

    key = _rsa_keys.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = GSTNCertificate(key, now - dt.timedelta(days=1), now + dt.timedelta(days=1), "CN=t", "00" * 32)
    assert cert.is_valid_at(now)
    with pytest.raises(ValueError, match="time-zone-aware"):
        cert.check_valid(dt.datetime(2026, 1, 1))
