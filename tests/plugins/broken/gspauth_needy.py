"""Broken test class, not plugin: the plugin needs ``gsp_token``, the test's credentials lack it;
and it has a GSP-level login that the test class never answers (no ``gsp_layer``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from gspauth.errors import ConfigurationError
from gspauth.hookspecs import hookimpl
from gspauth.types import Api, CredentialField, Credentials, GSPInfo, GSPSession, GSPSessionLogin


@hookimpl
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    register(GSPInfo(id="needy", name="Needy GSP", environments={"sandbox": "https://n.example"}, gsp_session=True,
                     credentials=(CredentialField("gsp_token", "the Needy token", required=True),
                                  CredentialField("client_id", "id", secret=False),
                                  CredentialField("client_secret", "secret"))))


@hookimpl
def gspauth_endpoint_url(gsp: str, api: Api, version: str, host: str) -> str | None:
    return host + api.path(version) if gsp == "needy" else None


@hookimpl
def gspauth_gsp_session_login(gsp: str, host: str) -> GSPSessionLogin | None:
    if gsp != "needy":
        return None
    return GSPSessionLogin(httpx.Request("POST", host + "/login"),
                           lambda r: GSPSession(headers={"Authorization": "Bearer " + r.json()["jwt"]}))


@hookimpl
def gspauth_sign_headers(gsp: str, credentials: Credentials) -> Mapping[str, str] | None:
    if gsp != "needy":
        return None
    token = credentials.get("gsp_token")
    if not token:
        raise ConfigurationError("Needy needs Credentials(gsp_token=...)")
    return {"X-Needy-Token": token}
