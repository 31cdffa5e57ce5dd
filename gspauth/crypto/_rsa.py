"""RSA side of the handshake: the GSTN certificate and the app-key encryption (spec §1, §3.2).

RSA is done once per session, so it stays in Python on ``cryptography``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gspauth.errors import CertificateError, CertificateExpired, ConfigurationError, InvalidKey

__all__ = ["CertificateSource", "GSTNCertificate", "certificate_from", "encrypt_app_key", "load_certificate"]


@dataclass(frozen=True)
class GSTNCertificate:
    """GSTN's public key, with the validity window of the certificate that carried it.

    A bare public key (no certificate) has ``not_valid_before``/``not_valid_after`` of ``None``
    and is treated as always valid.
    """

    public_key: rsa.RSAPublicKey = field(repr=False)
    not_valid_before: _dt.datetime | None
    not_valid_after: _dt.datetime | None
    subject: str
    fingerprint_sha256: str

    def is_valid_at(self, when: _dt.datetime) -> bool:
        _require_aware(when)
        if self.not_valid_before is None or self.not_valid_after is None:
            return True
        return self.not_valid_before <= when <= self.not_valid_after

    def check_valid(self, when: _dt.datetime | None = None) -> None:
        """Raise :class:`CertificateExpired` unless ``when`` (default: now, UTC) is in the window.

        :raises ValueError: ``when`` is a naive datetime (its time zone would be a guess).
        """
        when = when or _dt.datetime.now(_dt.timezone.utc)
        _require_aware(when)
        if not self.is_valid_at(when):
            raise CertificateExpired(
                f"GSTN certificate {self.fingerprint_sha256[:16]}… is valid from "
                f"{self.not_valid_before:%Y-%m-%d} to {self.not_valid_after:%Y-%m-%d}, not at {when:%Y-%m-%d %H:%M}Z; "
                "download the current certificate for this environment (GSTN rotates it yearly; "
                "a stale one makes GSTN answer TEC4002 'Invalid Data Format')"
            )


def _require_aware(when: _dt.datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("pass a time-zone-aware datetime (e.g. datetime.now(timezone.utc)), not a naive one")


def load_certificate(data: bytes | str) -> GSTNCertificate:
    """Load a GSTN certificate: X.509 in DER or PEM, or a bare RSA public key (DER/PEM)."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise CertificateError("PEM text must be ASCII; pass DER as bytes") from None
    raw = bytes(data)
    stripped = raw.strip()
    cert = None
    try:
        if stripped.startswith(b"-----BEGIN CERTIFICATE"):
            cert = x509.load_pem_x509_certificate(stripped)
        elif not stripped.startswith(b"-----"):
            try:
                cert = x509.load_der_x509_certificate(raw)
            except ValueError:
                cert = None
    except ValueError as exc:
        raise CertificateError(f"not a readable X.509 certificate: {exc}") from None
    if cert is not None:
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CertificateError("the GSTN certificate must carry an RSA public key")
        der = cert.public_bytes(serialization.Encoding.DER)
        return GSTNCertificate(
            public_key=key,
            not_valid_before=cert.not_valid_before_utc,
            not_valid_after=cert.not_valid_after_utc,
            subject=cert.subject.rfc4514_string(),
            fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        )
    try:
        if stripped.startswith(b"-----"):
            pub = serialization.load_pem_public_key(stripped)
        else:
            pub = serialization.load_der_public_key(raw)
    except (ValueError, TypeError) as exc:
        raise CertificateError("neither an X.509 certificate nor an RSA public key (DER or PEM)") from exc
    if not isinstance(pub, rsa.RSAPublicKey):
        raise CertificateError("the GSTN public key must be an RSA key")
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return GSTNCertificate(pub, None, None, "(bare public key)", hashlib.sha256(der).hexdigest())


def encrypt_app_key(
    certificate: GSTNCertificate,
    app_key: bytes,
    *,
    allow_expired: bool = False,
    now: _dt.datetime | None = None,
) -> str:
    """``B64(RSA-PKCS1v15(GSTN pub, app_key))`` — 344 characters for RSA-2048.

    Refuses an expired certificate unless ``allow_expired`` is set.
    """
    if not isinstance(app_key, bytes):
        raise TypeError(f"app_key must be bytes, not {type(app_key).__name__}")
    if len(app_key) != 32:
        raise InvalidKey(f"app_key must be 32 bytes, got {len(app_key)}", "app_key")
    if not allow_expired:
        certificate.check_valid(now)
    import base64

    return base64.b64encode(certificate.public_key.encrypt(app_key, padding.PKCS1v15())).decode("ascii")


#: Where a GSTN certificate can come from: a loaded one, its bytes (DER or PEM), PEM text, or a path.
CertificateSource: TypeAlias = "GSTNCertificate | bytes | str | os.PathLike[str]"


def certificate_from(source: CertificateSource) -> GSTNCertificate:
    """Load GSTN's certificate from ``source``: a :class:`GSTNCertificate` (returned as it is),
    its bytes (DER or PEM), PEM text, or the path of a ``.cer``/``.pem`` file.

    :raises ConfigurationError: the file cannot be read (the message names it).
    :raises CertificateError: the content is not a usable certificate or RSA public key.
    """
    if isinstance(source, GSTNCertificate):
        return source
    if isinstance(source, (bytes, bytearray)):
        return load_certificate(bytes(source))
    text = os.fspath(source)
    if text.lstrip().startswith("-----BEGIN"):
        return load_certificate(text)
    path = Path(text).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the GSTN certificate {str(path)!r}: {exc.strerror}; download the "
                                 "certificate for your environment from GSTN's developer portal") from None
    return load_certificate(data)
