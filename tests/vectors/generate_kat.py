"""Regenerate ``data/gspauth_kat.json`` from spec §11.3 (``shared/spec/gstn-protocol.md``).

Run: ``python tests/vectors/generate_kat.py`` (writes the file, prints its sha256).

Generator: this script, which computes every value with ``cryptography`` and the
standard library *directly* (it does not import gspauth), and refuses to write
unless each recomputed value equals the one printed in spec §11.3.
Independent verifiers: ``tests/vectors/test_kat.py`` (both gspauth backends) and
``rust/gspauth-core/tests/vectors.rs`` (the Rust core), which read the written file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

OUT = Path(__file__).parent / "data" / "gspauth_kat.json"

AK = bytes(range(0x00, 0x20))
EK = bytes(range(0x20, 0x40))
REK = bytes(range(0x40, 0x60))
REQ_JSON = '{"gstin":"27AAAAA0000A1Z5","fp":"072017"}'
RESP_JSON = '{"reference_id":"LAPN24235325555"}'
SID = "ABCDE1234F|123456"

# The values exactly as printed in spec §11.3.
SPEC = {
    "AK": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "EK": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
    "REK": "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=",
    "otp": "lBQwV4dMNxt5BBTu2msZ+w==",
    "sek": "YaaTbk6PEBwcwfmTtUKg1OJ0Dor61OTRXQ1mGzguyomfO3UEkm+L024xGOkDpM1K",
    "app_key": "oA8e3mfG+ANSby48TqkpvHBcgg43Hz4FE0cNZtxITum+X0DaQDw+WhKW3ulf0pqN",
    "req_j64": "eyJnc3RpbiI6IjI3QUFBQUEwMDAwQTFaNSIsImZwIjoiMDcyMDE3In0=",
    "req_data": "N4x+ZhaLyd7Qvr4sfXjFcMpg5Acwd4WPP3NsCv5+RNolUcvwF8EAGdqvUMasWl1qXlivpyDfvg4S6p8v1xVlOg==",
    "req_hmac": "UydtkVD49cbME6U9Sr5GQVigQsZmSrgg39FjwioFGHc=",
    "rek": "nsnczqn1sSa6HnZ404MpQ0SrOthS9VcpkIu083f2Ofu+X0DaQDw+WhKW3ulf0pqN",
    "resp_j64": "eyJyZWZlcmVuY2VfaWQiOiJMQVBOMjQyMzUzMjU1NTUifQ==",
    "resp_data": "bMQ4ZPdlCoFaPVLJvMhu70OsS6zNSwYXnKuge/MAOOyzKkDU9rO6pMxrqnsN8aTeyct7OFnhpVC8vxG2JAIsVg==",
    "resp_hmac": "k5EM7DzMiwgflrns9Y7EyWOnITc3Yvd7+1gbDh4YKhw=",
    "sign": "6G55FewfCNrVapXZc+6q6Vwa5wYsloasIbMXxvsM8Us=",
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def aes_enc(key: bytes, pt: bytes) -> bytes:
    p = padding.PKCS7(128).padder()
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(p.update(pt) + p.finalize()) + e.finalize()


def aes_dec_raw(key: bytes, ct: bytes) -> bytes:
    d = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return d.update(ct) + d.finalize()


def pad_ok(raw: bytes) -> bool:
    n = raw[-1]
    return 1 <= n <= 16 and raw[-n:] == bytes([n]) * n


def E(key: bytes, pt: bytes) -> str:
    return b64(aes_enc(key, pt))


def mac(key: bytes, msg: bytes) -> str:
    return b64(hmac.digest(key, msg, "sha256"))


def main() -> None:
    req_j64 = b64(REQ_JSON.encode()).encode()
    resp_j64 = b64(RESP_JSON.encode()).encode()
    got = {
        "AK": b64(AK),
        "EK": b64(EK),
        "REK": b64(REK),
        "otp": E(AK, b"575757"),
        "sek": E(AK, EK),
        "app_key": E(EK, AK),
        "req_j64": req_j64.decode(),
        "req_data": E(EK, req_j64),
        "req_hmac": mac(EK, req_j64),
        "rek": E(EK, REK),
        "resp_j64": resp_j64.decode(),
        "resp_data": E(REK, resp_j64),
        "resp_hmac": mac(REK, resp_j64),
        "sign": mac(SID.encode(), req_j64),
    }
    diff = {k for k in SPEC if SPEC[k] != got[k]}
    assert not diff, f"recomputed values differ from spec §11.3: {sorted(diff)}"

    # Derived negative cases: make sure each fails the way the test claims.
    assert not pad_ok(aes_dec_raw(EK, base64.b64decode(SPEC["sek"]))), "pick another wrong key"
    assert not pad_ok(aes_dec_raw(AK, base64.b64decode(SPEC["rek"]))), "pick another wrong key"

    spec = ["Spec11.3"]
    tc = iter(range(1, 1000))
    doc = {
        "algorithm": "GSTN-ENVELOPE",
        "schema": "Wycheproof-like: testGroups[].tests[] with tcId, comment, flags, result (valid|invalid)",
        "generatorVersion": "1",
        "header": [
            "GSTN payload crypto known answers: every value of spec §11.3 (shared/spec/gstn-protocol.md),",
            "plus derived negative cases. AK = 00..1f, EK = 20..3f, REK = 40..5f (hex).",
            "Generator: tests/vectors/generate_kat.py (Python `cryptography` + stdlib hmac/base64, not gspauth);",
            "it refuses to write unless the recomputed values equal the spec's table.",
            "Independent verifiers: tests/vectors/test_kat.py (both backends), rust/gspauth-core/tests/vectors.rs.",
        ],
        "notes": {
            "Spec11.3": "value printed in spec §11.3",
            "Derived": "negative case derived from a spec value; expected error class and exact message",
        },
        "testGroups": [
            {
                "type": "KeyEncoding",
                "comment": "B64 of the raw 32-byte keys",
                "tests": [
                    {"tcId": next(tc), "comment": f"{n} B64", "flags": spec, "result": "valid",
                     "key": k.hex(), "b64": SPEC[n]}
                    for n, k in (("AK", AK), ("EK", EK), ("REK", REK))
                ],
            },
            {
                "type": "Field",
                "comment": "E(key, plaintext); decrypt_field/decrypt_key invert it (isKey: plaintext is a 32-byte key)",
                "tests": [
                    {"tcId": next(tc), "comment": "otp = E(AK, \"575757\")", "flags": spec, "result": "valid",
                     "key": AK.hex(), "plaintext": b"575757".hex(), "field": "otp", "isKey": False, "wire": SPEC["otp"]},
                    {"tcId": next(tc), "comment": "sek = E(AK, EK)", "flags": spec, "result": "valid",
                     "key": AK.hex(), "plaintext": EK.hex(), "field": "sek", "isKey": True, "wire": SPEC["sek"]},
                    {"tcId": next(tc), "comment": "refresh app_key = E(EK, AK)", "flags": spec, "result": "valid",
                     "key": EK.hex(), "plaintext": AK.hex(), "field": "app_key", "isKey": True, "wire": SPEC["app_key"]},
                    {"tcId": next(tc), "comment": "rek = E(EK, REK)", "flags": spec, "result": "valid",
                     "key": EK.hex(), "plaintext": REK.hex(), "field": "rek", "isKey": True, "wire": SPEC["rek"]},
                ],
            },
            {
                "type": "Request",
                "comment": "encrypt_request(EK, json) = (data, hmac); decrypt_request inverts it",
                "tests": [
                    {"tcId": next(tc), "comment": "request envelope", "flags": spec, "result": "valid",
                     "key": EK.hex(), "json": REQ_JSON, "j64": SPEC["req_j64"],
                     "data": SPEC["req_data"], "hmac": SPEC["req_hmac"]},
                ],
            },
            {
                "type": "Evc",
                "comment": "encrypt_request_evc(EK, utf8(sid), json) = (data, sign)",
                "tests": [
                    {"tcId": next(tc), "comment": "EVC sign = HMAC(utf8(sid), request j64)", "flags": spec,
                     "result": "valid", "key": EK.hex(), "sid": SID, "json": REQ_JSON, "j64": SPEC["req_j64"],
                     "data": SPEC["req_data"], "sign": SPEC["sign"]},
                ],
            },
            {
                "type": "Response",
                "comment": "encrypt_response(EK, REK, json) = (data, rek, hmac); decrypt_response inverts it",
                "tests": [
                    {"tcId": next(tc), "comment": "response envelope", "flags": spec, "result": "valid",
                     "key": EK.hex(), "rekKey": REK.hex(), "json": RESP_JSON, "j64": SPEC["resp_j64"],
                     "data": SPEC["resp_data"], "rek": SPEC["rek"], "hmac": SPEC["resp_hmac"]},
                ],
            },
            {
                "type": "Decrypt",
                "comment": "one backend call with `args`; result valid => returns `plaintext` (hex); invalid => raises `error` with `message`",
                "tests": [
                    {"tcId": next(tc), "comment": "response with the request's hmac", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_response",
                     "args": {"key": EK.hex(), "data": SPEC["resp_data"], "rek": SPEC["rek"], "hmac": SPEC["req_hmac"], "tolerant": False},
                     "error": "IntegrityError", "field": "hmac",
                     "message": "hmac does not match the decrypted payload (tampered data or wrong key)"},
                    {"tcId": next(tc), "comment": "rek under the wrong session key (AK)", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_response",
                     "args": {"key": AK.hex(), "data": SPEC["resp_data"], "rek": SPEC["rek"], "hmac": SPEC["resp_hmac"], "tolerant": False},
                     "error": "DecryptionError", "field": "rek",
                     "message": "rek did not decrypt: bad padding (wrong key or corrupted data)"},
                    {"tcId": next(tc), "comment": "response without hmac", "flags": ["Derived"],
                     "result": "valid", "function": "decrypt_response",
                     "args": {"key": EK.hex(), "data": SPEC["resp_data"], "rek": SPEC["rek"], "hmac": None, "tolerant": False},
                     "plaintext": RESP_JSON.encode().hex()},
                    {"tcId": next(tc), "comment": "sek truncated by 4 characters", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_key",
                     "args": {"key": AK.hex(), "text": SPEC["sek"][:-4], "field": "sek", "tolerant": False},
                     "error": "DecryptionError", "field": "sek",
                     "message": "sek did not decrypt: length 45 is not a multiple of 16 (truncated?)"},
                    {"tcId": next(tc), "comment": "sek under the wrong key (EK)", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_key",
                     "args": {"key": EK.hex(), "text": SPEC["sek"], "field": "sek", "tolerant": False},
                     "error": "DecryptionError", "field": "sek",
                     "message": "sek did not decrypt: bad padding (wrong key or corrupted data)"},
                    {"tcId": next(tc), "comment": "otp decrypts to 6 bytes, not a key", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_key",
                     "args": {"key": AK.hex(), "text": SPEC["otp"], "field": "otp", "tolerant": False},
                     "error": "DecryptionError", "field": "otp",
                     "message": "otp decrypted to 6 bytes, expected a 32-byte key (wrong key?)"},
                    {"tcId": next(tc), "comment": "otp with CRLF inside, strict", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_field",
                     "args": {"key": AK.hex(), "text": SPEC["otp"][:12] + "\r\n" + SPEC["otp"][12:], "field": "otp", "tolerant": False},
                     "error": "InvalidBase64", "field": "otp",
                     "message": "otp is not valid Base64; pass tolerant=True to accept embedded whitespace"},
                    {"tcId": next(tc), "comment": "otp with CRLF, space and TAB inside, tolerant", "flags": ["Derived"],
                     "result": "valid", "function": "decrypt_field",
                     "args": {"key": AK.hex(), "text": " " + SPEC["otp"][:12] + "\r\n\t" + SPEC["otp"][12:] + "\n", "field": "otp", "tolerant": True},
                     "plaintext": b"575757".hex()},
                    {"tcId": next(tc), "comment": "URL-safe alphabet is not accepted", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_field",
                     "args": {"key": EK.hex(), "text": SPEC["app_key"].replace("+", "-"), "field": "app_key", "tolerant": True},
                     "error": "InvalidBase64", "field": "app_key",
                     "message": "app_key is not valid Base64"},
                    {"tcId": next(tc), "comment": "request with a tampered hmac", "flags": ["Derived"],
                     "result": "invalid", "function": "decrypt_request",
                     "args": {"key": EK.hex(), "data": SPEC["req_data"], "hmac": "V" + SPEC["req_hmac"][1:], "tolerant": False},
                     "error": "IntegrityError", "field": "hmac",
                     "message": "hmac does not match the decrypted payload (tampered data or wrong key)"},
                    {"tcId": next(tc), "comment": "request without hmac", "flags": ["Derived"],
                     "result": "valid", "function": "decrypt_request",
                     "args": {"key": EK.hex(), "data": SPEC["req_data"], "hmac": None, "tolerant": False},
                     "plaintext": REQ_JSON.encode().hex()},
                ],
            },
        ],
    }
    doc["numberOfTests"] = sum(len(g["tests"]) for g in doc["testGroups"])
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT.name}: {doc['numberOfTests']} tests, sha256 {hashlib.sha256(text.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
