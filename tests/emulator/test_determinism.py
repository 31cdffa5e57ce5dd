"""Same seed, same requests → byte-identical responses; seeded RSA keys are sound."""

from __future__ import annotations

import json
import math
import random

import httpx

from gspauth import crypto
from gspauth.emulator import Emulator, defaults, keys
from tests.emulator.conftest import START, TP
from tests.emulator.rawclient import AUTH, GSTR1, RETURNS, Raw, b2b_payload

P = "072017"
_AK1, _AK2 = bytes(range(32)), bytes(range(32, 64))
_UNREGISTERED = defaults.make_gstin("19", "AAACU2222U")


def _transcript(seed: int) -> list[tuple[int, bytes]]:
    """A scripted session on two layers; every response status and body, in order."""
    emu = Emulator(seed=seed, clock_start=START, clock_frozen=True, large_download_threshold=2,
                   unregistered_gstins=(_UNREGISTERED,))
    out: list[tuple[int, bytes]] = []

    def record(request: httpx.Request) -> httpx.Response:
        response = emu.handle(request)
        out.append((response.status_code, response.content))
        return response

    c = httpx.Client(transport=httpx.MockTransport(record), base_url="http://e")
    for layer in ("gstn", "vayana"):
        r = Raw(c, layer, TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem), now=emu.clock.now, ak=_AK1)
        r.otprequest(txn=f"{layer}-1")
        r.authtoken(emu.outbox.latest_otp(TP.gstin) or "", txn=f"{layer}-2")
        r.refresh(_AK2, txn=f"{layer}-3")
        ref = r.open(r.retsave(b2b_payload(TP.gstin, P, 3), txn=f"{layer}-4"))["reference_id"]
        r.call("GET", RETURNS, action="RETSTATUS", data=True, period=P, txn=f"{layer}-5",
               params={"action": "RETSTATUS", "gstin": TP.gstin, "ret_period": P, "ref_id": ref})
        # a partly rejected save (an unregistered counterparty), its report, and a GSTR-2A read
        mixed = b2b_payload(TP.gstin, P, 1, start=10 if layer == "gstn" else 20, ctin=_UNREGISTERED)
        mixed["b2b"] += b2b_payload(TP.gstin, P, 1, start=11 if layer == "gstn" else 21)["b2b"]
        ref = r.open(r.retsave(mixed, txn=f"{layer}-5a"))["reference_id"]
        r.call("GET", RETURNS, action="RETSTATUS", data=True, period=P, txn=f"{layer}-5b",
               params={"action": "RETSTATUS", "gstin": TP.gstin, "ret_period": P, "ref_id": ref})
        r.call("GET", "/taxpayerapi/v2.0/returns/gstr2a", action="B2B", data=True, period=P, txn=f"{layer}-5c",
               params={"action": "B2B", "gstin": TP.gstin, "ret_period": P})
        token = r.open(r.call("GET", GSTR1, action="B2B", data=True, period=P, txn=f"{layer}-6",
                              params={"action": "B2B", "gstin": TP.gstin, "ret_period": P}))["token"]
        det = r.open(r.call("GET", RETURNS, action="FILEDET", data=True, period=P, txn=f"{layer}-7",
                            params={"action": "FILEDET", "gstin": TP.gstin, "ret_period": P, "token": token}))
        c.get(("/vayana/gus/returns" if layer == "vayana" else "") + det["urls"][0]["ul"])
        r.call("GET", AUTH, action="EVCOTP", data=True, txn=f"{layer}-8",
               params={"action": "EVCOTP", "gstin": TP.gstin, "pan": TP.gstin[2:12], "form_type": "R1"})
        r.logout(_AK2, txn=f"{layer}-9")
    out.append((0, emu.certificate_der))
    out.append((0, json.dumps([emu.outbox.otps(), emu.outbox.notifications()]).encode()))
    emu.close()
    return out


def test_same_seed_gives_byte_identical_responses() -> None:
    first, second = _transcript(77), _transcript(77)
    assert len(first) == len(second) >= 20
    assert all(status in (0, 200) for status, _ in first)
    assert first == second


def test_another_seed_gives_other_secrets() -> None:
    a, b = _transcript(77), _transcript(78)
    differing = sum(x != y for x, y in zip(a, b))
    # only bodies without any random part may agree: {"status_cd":"1"} and the GSTR-2A "no documents" error
    assert differing >= len(a) - 8


def test_restart_of_a_seeded_emulator_draws_new_identifiers(tmp_path: object) -> None:
    refs = []
    for _ in range(2):
        emu = Emulator(seed=5, state_dir=str(tmp_path), clock_start=START, clock_frozen=True)
        c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
        r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
        r.login(emu)
        refs.append(r.open(r.retsave(b2b_payload(TP.gstin, P, 1, start=len(refs))))["reference_id"])
        emu.close()
    assert refs[0] != refs[1]


def _is_prime_independent(n: int) -> bool:
    """Miller-Rabin with the first 30 primes as fixed bases (independent of the emulator's code)."""
    small = [p for p in range(2, 120) if all(p % q for q in range(2, p))][:30]
    if n < 2 or any(n % p == 0 for p in small):
        return n in small
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in small:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def test_seeded_rsa_key_is_sound() -> None:
    key = keys.deterministic_rsa_key(123, 0)
    nums = key.private_numbers()
    p, q, n, e = nums.p, nums.q, nums.public_numbers.n, nums.public_numbers.e
    assert e == 65537 and n == p * q and n.bit_length() == 2048 == key.key_size
    assert p.bit_length() == q.bit_length() == 1024
    assert _is_prime_independent(p) and _is_prime_independent(q)
    assert math.gcd(e, p - 1) == math.gcd(e, q - 1) == 1
    assert abs(p - q).bit_length() > 1024 - 100
    assert (nums.d * e) % math.lcm(p - 1, q - 1) == 1
    assert keys.deterministic_rsa_key(123, 0) is key  # cached, and the same inputs give the same key
    assert keys.deterministic_rsa_key(123, 1).private_numbers().p != p
    message = b"\x01" * 32
    cert_free = crypto.load_certificate(key.public_key().public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.PEM,
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).PublicFormat.SubjectPublicKeyInfo))
    import base64

    wire = base64.b64decode(crypto.encrypt_app_key(cert_free, message))
    from gspauth.emulator.keys import GstnKey

    assert GstnKey.__doc__ and keys._rsa_pkcs1v15_decrypt(keys._RawRsa(key), wire) == message


def test_miller_rabin_rejects_composites_and_accepts_primes() -> None:
    rng = random.Random(1)
    carmichael = [561, 1105, 1729, 2465, 2821, 6601, 8911, 41041, 825265, 321197185, 5394826801]
    strong_pseudoprime_2 = [2047, 3277, 4033, 4681, 8321, 3215031751]
    for n in carmichael + strong_pseudoprime_2 + [(2**61 - 1) * (2**89 - 1)]:
        assert not keys._probable_prime(n, rng), n
    for p in (2**61 - 1, 2**89 - 1, 2**127 - 1, 2**521 - 1, 1000000007):
        assert keys._probable_prime(p, rng), p


def test_seeded_keys_are_documented_as_emulator_only() -> None:
    assert keys.__doc__ is not None and "emulator only" in keys.__doc__.lower()
    assert "never use it" in keys.__doc__.lower()
    assert keys.deterministic_rsa_key.__doc__ is not None and "emulator only" in keys.deterministic_rsa_key.__doc__.lower()
