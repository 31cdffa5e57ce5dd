"""The emulator's GSTN key pairs and self-signed certificates, with rotation.

.. warning::
   :func:`deterministic_rsa_key` is for the **emulator only**. Its primes come from
   Python's Mersenne Twister seeded with a small public number, so anyone can recompute
   the private key. Never use it (or this module) for a real key: real keys come from
   ``cryptography``'s ``rsa.generate_private_key``, which an unseeded emulator also uses.

Seeded keys exist so that a seeded emulator serves the same certificate every run. The
search: random odd 1024-bit candidates with the top two bits set (so ``p*q`` has exactly
2048 bits), trial division by the primes below 2000, ``p ≢ 1 (mod 65537)`` (so ``e`` is
coprime to ``p-1``), then 40 Miller-Rabin rounds with random bases (error below 2^-80
even for adversarial inputs; FIPS 186-4 asks 5 rounds for random 1024-bit candidates);
``|p-q|`` must exceed 2^(1024-100) (FIPS 186-4 B.3.1). About half a second per key,
cached per process.

RSA decryption of ``app_key`` is done with an explicit PKCS#1 v1.5 padding check
(OpenSSL 3.2+ "implicit rejection" would otherwise turn a ciphertext for another key
into a random-looking plaintext instead of an error).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import random
import threading
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["GstnKey", "KeyRing", "build_certificate", "deterministic_rsa_key"]

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1))]
_KEY_CACHE: dict[tuple[int, int], rsa.RSAPrivateKey] = {}
_KEY_CACHE_LOCK = threading.Lock()


def _probable_prime(n: int, rng: random.Random, rounds: int = 40) -> bool:
    """Miller-Rabin with ``rounds`` random bases (``n`` odd, > 3)."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random, e: int) -> int:
    while True:
        c = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if any(c % p == 0 for p in _SMALL_PRIMES):
            continue
        if (c - 1) % e == 0:
            continue
        if _probable_prime(c, rng):
            return c


def deterministic_rsa_key(seed: int, index: int, bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key (``e`` = 65537, exactly ``bits`` bits) derived from ``(seed, index)``.

    Same inputs, same key. **Emulator only**: the key is public knowledge (see the module
    docstring); never use it to protect anything.
    """
    with _KEY_CACHE_LOCK:
        cached = _KEY_CACHE.get((seed, index))
    if cached is not None:
        return cached
    rng = random.Random(f"gspauth-emulator-rsa:{seed}:{index}")
    e = 65537
    while True:
        p = _prime(bits // 2, rng, e)
        q = _prime(bits // 2, rng, e)
        if abs(p - q).bit_length() > bits // 2 - 100 and (p * q).bit_length() == bits:
            break
    if p < q:
        p, q = q, p
    phi = (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p=p, q=q, d=d, dmp1=d % (p - 1), dmq1=d % (q - 1), iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    key = numbers.private_key()
    with _KEY_CACHE_LOCK:
        _KEY_CACHE[(seed, index)] = key
    return key


class _RawRsa:
    """CRT parameters for an exact PKCS#1 v1.5 decryption (never shown in a repr)."""

    __slots__ = ("dmp1", "dmq1", "iqmp", "k", "n", "p", "q")

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        nums = key.private_numbers()
        self.n = nums.public_numbers.n
        self.p, self.q = nums.p, nums.q
        self.dmp1, self.dmq1, self.iqmp = nums.dmp1, nums.dmq1, nums.iqmp
        self.k = (self.n.bit_length() + 7) // 8

    def __repr__(self) -> str:
        return "<_RawRsa [secure]>"


def _rsa_pkcs1v15_decrypt(raw: _RawRsa, ciphertext: bytes) -> bytes | None:
    """PKCS#1 v1.5 decryption with an explicit padding check; ``None`` if it does not decrypt."""
    if len(ciphertext) != raw.k:
        return None
    c = int.from_bytes(ciphertext, "big")
    if c >= raw.n:
        return None
    m1 = pow(c, raw.dmp1, raw.p)
    m2 = pow(c, raw.dmq1, raw.q)
    h = (raw.iqmp * (m1 - m2)) % raw.p
    em = (m2 + h * raw.q).to_bytes(raw.k, "big")
    if em[0] != 0 or em[1] != 2:
        return None
    sep = em.find(b"\x00", 2)
    if sep < 10:  # at least 8 non-zero padding bytes
        return None
    return em[sep + 1 :]


@dataclass
class GstnKey:
    """One GSTN key pair + certificate. ``accepted_until`` may end before the certificate (rotation)."""

    index: int
    private_key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    accepted_until: _dt.datetime
    _raw: _RawRsa = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._raw = _RawRsa(self.private_key)

    @property
    def not_valid_before(self) -> _dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_valid_after(self) -> _dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint_sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    def accepts_at(self, when: _dt.datetime) -> bool:
        """Inside the certificate's validity (both ends included) and before a rotation cut-off.

        A rotation cut-off (``accepted_until`` before ``not_valid_after``) is exclusive: a
        rotation with no overlap retires the old key at once.
        """
        if not self.not_valid_before <= when <= self.not_valid_after:
            return False
        return self.accepted_until >= self.not_valid_after or when < self.accepted_until

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        return _rsa_pkcs1v15_decrypt(self._raw, ciphertext)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def describe(self, now: _dt.datetime) -> dict[str, object]:
        return {
            "index": self.index,
            "subject": self.certificate.subject.rfc4514_string(),
            "serial_number": format(self.certificate.serial_number, "x"),
            "not_valid_before": self.not_valid_before.isoformat(),
            "not_valid_after": self.not_valid_after.isoformat(),
            "accepted_until": min(self.accepted_until, self.not_valid_after).isoformat(),
            "accepted_now": self.accepts_at(now),
            "fingerprint_sha256": self.fingerprint_sha256,
        }


def build_certificate(
    key: rsa.RSAPrivateKey, index: int, not_before: _dt.datetime, validity: _dt.timedelta, serial: int
) -> x509.Certificate:
    """The self-signed certificate of emulator key number ``index`` (never mistakable for GSTN's)."""
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "IN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gspauth emulator (not GSTN)"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"GSTN_EMULATOR_public_{index}"),
    ])  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .sign(key, hashes.SHA256())
    )


class KeyRing:
    """All GSTN keys, newest last. Thread-safe reads of an immutable tuple."""

    def __init__(self, keys: list[GstnKey] | None = None) -> None:
        self._keys: tuple[GstnKey, ...] = tuple(keys or ())

    @property
    def keys(self) -> tuple[GstnKey, ...]:
        return self._keys

    @property
    def current(self) -> GstnKey:
        return self._keys[-1]

    def add(self, key: GstnKey) -> None:
        self._keys = (*self._keys, key)

    def replace(self, keys: list[GstnKey]) -> None:
        self._keys = tuple(keys)

    def decrypt_app_key(
        self, ciphertext: bytes, now: _dt.datetime, *, accept_retired: bool = False
    ) -> tuple[bytes | None, GstnKey | None]:
        """``(plaintext, key)`` with the first accepted key that decrypts; else ``(None, retired_key_or_None)``.

        On failure the second element names a no-longer-accepted key that *would* have
        decrypted it (a stale certificate), so the caller can say so. With
        ``accept_retired`` such a key is used instead (the lenient reading of spec §12).
        """
        keys = self._keys
        for key in reversed(keys):
            if key.accepts_at(now):
                plain = key.decrypt(ciphertext)
                if plain is not None:
                    return plain, key
        for key in reversed(keys):
            if not key.accepts_at(now):
                plain = key.decrypt(ciphertext)
                if plain is not None:
                    return (plain if accept_retired else None), key
        return None, None
