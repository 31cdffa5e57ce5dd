"""Unit tests of the pure wire layer (no sockets)."""

from __future__ import annotations

import json

import pytest

from gspauth import codes, crypto, protocol
from gspauth.errors import (
    ApiAccessDenied,
    AppKeyRejected,
    ClientCredentialsError,
    GSPError,
    IntegrityError,
    InvalidGSTIN,
    InvalidOtp,
    InvalidParameter,
    InvalidStateCode,
    InvalidUser,
    NotAuthorized,
    RateLimited,
    RequestInProgress,
    RequestRejected,
    ServerError,
    SessionExpired,
    SessionInvalid,
    SessionLimitExceeded,
)
from gspauth.redact import redact_headers

AK = bytes(range(32))
EK = bytes(range(32, 64))
GSTIN = "27AAAAA0000A1Z5"  # spec §11.3 sample; not check-digit valid, so use a real-shaped one below


class Creds:
    def __init__(self, client_id: str | None = None, client_secret: str | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret


def valid_gstin(prefix14: str = "27AAPFU0939F1Z") -> str:
    from gspauth.gstin import check_character

    return prefix14 + check_character(prefix14)


def test_auth_headers_derive_state_and_omit_missing_client_credentials() -> None:
    g = valid_gstin()
    h = protocol.auth_headers(gstin=g, username="alice", ip_usr="10.0.0.1", txn="abc123")
    assert h["state-cd"] == "27"
    assert h["gstin"] == g and h["username"] == "alice" and h["txn"] == "abc123"
    assert "clientid" not in h and "client-secret" not in h and "auth-token" not in h
    h2 = protocol.auth_headers(gstin=g, username="alice", ip_usr="10.0.0.1", txn="t", credentials=Creds("id1", "s3"))
    assert h2["clientid"] == "id1" and h2["client-secret"] == "s3"
    h3 = protocol.auth_headers(gstin=g, username="a", ip_usr="10.0.0.1", txn="t", credentials=Creds("id1", None))
    assert "client-secret" not in h3


def test_state_cd_mismatch_and_bad_gstin_refused_before_sending() -> None:
    with pytest.raises(InvalidStateCode, match="AUTH4041"):
        protocol.auth_headers(gstin=valid_gstin(), username="a", ip_usr="10.0.0.1", txn="t", state_cd="29")
    with pytest.raises(InvalidGSTIN):
        protocol.auth_headers(gstin="27AAPFU0939F1ZX", username="a", ip_usr="10.0.0.1", txn="t")


@pytest.mark.parametrize("period", ["132017", "002017", "72017", "07-2017", "071999", 72017])
def test_ret_period_validated(period: object) -> None:
    with pytest.raises(InvalidParameter):
        protocol.data_headers(gstin=valid_gstin(), username="a", auth_token="tok", ip_usr="10.0.0.1",
                              txn="t", ret_period=period)  # type: ignore[arg-type]


def test_data_headers() -> None:
    h = protocol.data_headers(gstin=valid_gstin(), username="a", auth_token="tok", ip_usr="10.0.0.1",
                              txn="t", ret_period="072017")
    assert h["auth-token"] == "tok" and h["ret_period"] == "072017" and h["state-cd"] == "27"
    assert redact_headers(h)["auth-token"] == "[secure]"


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, "é"])
def test_txn_and_ip_validated(bad: str) -> None:
    with pytest.raises(InvalidParameter):
        protocol.validate_txn(bad)
    with pytest.raises(InvalidParameter):
        protocol.validate_ip("300.1.1.1")


def test_txn_generation() -> None:
    a, b = protocol.new_txn(), protocol.new_txn()
    assert a != b and len(a) == 32 and protocol.validate_txn(a)
    d1 = protocol.derive_txn(valid_gstin(), "072017", b"chunk")
    assert d1 == protocol.derive_txn(valid_gstin(), "072017", b"chunk")
    assert d1 != protocol.derive_txn(valid_gstin(), "082017", b"chunk")
    # length-prefixing: moving a boundary changes the id
    assert protocol.derive_txn("ab", "c") != protocol.derive_txn("a", "bc")


def test_refresh_body_matches_spec_vector() -> None:
    call = protocol.refresh_token_request(username="u", auth_token="T", sek=EK, new_app_key=AK)
    assert call.body == {
        "action": "REFRESHTOKEN", "username": "u", "auth_token": "T",
        "app_key": "oA8e3mfG+ANSby48TqkpvHBcgg43Hz4FE0cNZtxITum+X0DaQDw+WhKW3ulf0pqN",
    }
    assert "oA8e" not in repr(call) and "auth_token" not in repr(call)


def test_token_grant_parses_sek_vector_and_numeric_status() -> None:
    reply = protocol.parse_reply(200, json.dumps({
        "status_cd": 1, "auth_token": "46c8db2decd24f438c2a3f5df29bae50", "expiry": "360",
        "sek": "YaaTbk6PEBwcwfmTtUKg1OJ0Dor61OTRXQ1mGzguyomfO3UEkm+L024xGOkDpM1K"}).encode())
    grant = protocol.parse_token_grant(reply, AK)
    assert grant.sek == EK and grant.expiry_minutes == 360
    assert "46c8" not in repr(grant)


def test_wrap_payload_vector_and_unwrap_response_vector() -> None:
    body = protocol.wrap_payload(EK, "RETSAVE", b'{"gstin":"27AAAAA0000A1Z5","fp":"072017"}')
    assert body["data"] == ("N4x+ZhaLyd7Qvr4sfXjFcMpg5Acwd4WPP3NsCv5+RNolUcvwF8EAGdqvUMasWl1qXlivpyDfvg4S6p8v1xVlOg==")
    assert body["hmac"] == "UydtkVD49cbME6U9Sr5GQVigQsZmSrgg39FjwioFGHc="
    # dict payloads become compact JSON
    assert protocol.wrap_payload(EK, "RETSAVE", {"gstin": "27AAAAA0000A1Z5", "fp": "072017"}) == body
    reply = {"status_cd": "1",
             "data": "bMQ4ZPdlCoFaPVLJvMhu70OsS6zNSwYXnKuge/MAOOyzKkDU9rO6pMxrqnsN8aTeyct7OFnhpVC8vxG2JAIsVg==",
             "rek": "nsnczqn1sSa6HnZ404MpQ0SrOthS9VcpkIu083f2Ofu+X0DaQDw+WhKW3ulf0pqN",
             "hmac": "k5EM7DzMiwgflrns9Y7EyWOnITc3Yvd7+1gbDh4YKhw="}
    assert protocol.unwrap_reply(EK, reply) == {"reference_id": "LAPN24235325555"}
    with pytest.raises(IntegrityError):
        protocol.unwrap_reply(EK, {**reply, "hmac": "UydtkVD49cbME6U9Sr5GQVigQsZmSrgg39FjwioFGHc="})


def test_otp_vector() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography.hazmat.primitives import serialization

    cert = crypto.load_certificate(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    call = protocol.auth_token_request(username="u", certificate=cert, app_key=AK, otp="575757")
    assert call.body["otp"] == "lBQwV4dMNxt5BBTu2msZ+w=="
    assert len(call.body["app_key"]) == 344
    import base64

    from cryptography.hazmat.primitives.asymmetric import padding

    assert key.decrypt(base64.b64decode(call.body["app_key"]), padding.PKCS1v15()) == AK


@pytest.mark.parametrize(
    ("status", "body", "exc", "code"),
    [
        (200, {"status_cd": "0", "error": {"message": "Invalid Session", "error_cd": "AUTH4033"}},
         SessionInvalid, "AUTH4033"),
        (200, {"status_cd": 0, "error": {"message": "x", "error_cd": "AUTH4037"}}, ApiAccessDenied, "AUTH4037"),
        (403, {"status_cd": "0", "error": {"message": "Invalid Client ID", "error_cd": "AUT4033"}},
         ClientCredentialsError, "AUT4033"),
        (200, {"status_cd": "0", "error": {"message": "queued", "error_cd": "RETINPROGRESS"}},
         RequestInProgress, "RETINPROGRESS"),
        (502, b"<html>bad gateway</html>", ServerError, None),
        (503, {"status_cd": "0"}, ServerError, None),
    ],
)
def test_error_replies_typed(status: int, body: object, exc: type[GSPError], code: str | None) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(exc) as info:
        protocol.parse_reply(status, content, gsp="cleartax")
    assert info.value.error_code == code
    if code == "AUTH4037":
        assert "Manage API Access" in str(info.value)


def test_gsp_level_mapping_wins() -> None:
    marker = GSPError("gsp said no", error_code="GSP001")
    with pytest.raises(GSPError, match="GSP001"):
        protocol.parse_reply(401, b"{}", map_error=lambda: marker)
    assert protocol.parse_reply(200, b'{"status_cd":"1"}', map_error=lambda: None) == {"status_cd": "1"}


# Every error code of spec §6 (the GSTN/GSP error table) with the exception it must become.
SPEC_CODES = {
    "AUT4031": ClientCredentialsError, "AUT4032": ClientCredentialsError, "AUT4033": ClientCredentialsError,
    "AUT4034": ClientCredentialsError, "AUTH403": SessionLimitExceeded, "AUTH4032": InvalidUser,
    "AUTH4033": SessionInvalid, "AUTH4034": InvalidOtp, "AUTH4036": AppKeyRejected, "AUTH4037": ApiAccessDenied,
    "AUTH4038": SessionExpired, "AUTH4039": RequestRejected, "AUTH4040": RequestRejected,
    "AUTH4041": RequestRejected, "AUTH158": NotAuthorized, "TEC4001": ServerError, "TEC4002": AppKeyRejected,
    "TEC4003": AppKeyRejected, "GEN5001": RequestRejected, "GEN5007": RequestRejected, "GEN5008": ServerError,
    "SWEB9002": InvalidUser, "SWEB9033": InvalidUser, "SWEB9035": InvalidUser, "RET11402": NotAuthorized,
    "RET11409": InvalidUser, "RET2B1010": NotAuthorized, "RET13506": InvalidOtp,
    "RT-R1R3BAV-1007": SessionInvalid, "RETINPROGRESS": RequestInProgress, "RTN_24": RequestInProgress,
    # beyond §6: seen from GSPs (user-pain-points §7, §9)
    "GSPERR300": ServerError, "GEN4004": ServerError, "GEN5005": RateLimited,
}  # fmt: skip


@pytest.mark.parametrize("code", sorted(SPEC_CODES))
def test_every_spec_code_is_typed_with_a_hint(code: str) -> None:
    status = codes.CODES[code].http_status
    body = json.dumps({"status_cd": "0", "error": {"error_cd": code, "message": "from the server"}}).encode()
    with pytest.raises(GSPError) as info:
        protocol.parse_reply(status, body, gsp="vayana")
    err = info.value
    assert type(err) is SPEC_CODES[code]
    assert (err.error_code, err.message, err.gsp) == (code, "from the server", "vayana")
    assert err.hint and len(err.hint) > 20 and err.hint in str(err)
    # without a message from the server, the table's own message is used
    bare = codes.error_for(code)
    assert bare.message == codes.CODES[code].message and bare.hint == err.hint


def test_code_specific_hints() -> None:
    assert "Manage API Access" in str(codes.error_for("AUTH4037"))
    assert "certificate" in str(codes.error_for("TEC4002"))
    assert "first two digits of the GSTIN" in str(codes.error_for("AUTH4041"))
    assert "session store" in str(codes.error_for("AUTH403"))


def test_body_bytes_built_directly_equal_the_json_encoding() -> None:
    payload = {"gstin": "27AAPCD0007K1ZO", "fp": PERIOD_SAMPLE, "b2b": [{"ctin": "x", "inv": [{"val": 1.5}]}]}
    content = protocol.wrap_payload_content(EK, "RETSAVE", payload)
    assert json.loads(content) == protocol.wrap_payload(EK, "RETSAVE", payload)
    assert content == protocol.encode_payload(protocol.wrap_payload(EK, "RETSAVE", payload))


PERIOD_SAMPLE = "072017"
