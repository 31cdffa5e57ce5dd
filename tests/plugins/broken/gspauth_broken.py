"""A deliberately broken GSP plugin: the conformance kit must fail it, with readable messages.

Bugs, one per kit check: the URL ignores the host override and answers for any GSP id; the
headers carry a random nonce (not repeatable) and no clientid; the client secret is logged;
GSTN's own error replies are mapped as if they were the GSP's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping

import httpx

from gspauth.errors import GSPError, GSPLayerError
from gspauth.hookspecs import hookimpl
from gspauth.types import Api, CredentialField, Credentials, GSPInfo

log = logging.getLogger("gspauth.broken")


@hookimpl
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    register(GSPInfo(id="broken", name="Broken GSP", environments={"sandbox": "https://sandbox.broken.example"},
                     credentials=(CredentialField("client_id", "id", required=True, secret=False),
                                  CredentialField("client_secret", "secret", required=True))))


@hookimpl
def gspauth_endpoint_url(api: Api, version: str) -> str | None:
    return "https://sandbox.broken.example" + api.path(version)  # BUG: ignores gsp and host


@hookimpl
def gspauth_sign_headers(gsp: str, credentials: Credentials) -> Mapping[str, str] | None:
    if gsp != "broken":
        return None
    log.info("signing with secret %s", credentials.client_secret)  # BUG: leaks a secret
    return {"X-Broken-Nonce": uuid.uuid4().hex}  # BUG: not repeatable, no clientid


@hookimpl
def gspauth_map_error(gsp: str, response: httpx.Response) -> GSPError | None:
    if gsp != "broken":
        return None
    return GSPLayerError("everything is our fault", status_code=response.status_code)  # BUG: maps GSTN replies
