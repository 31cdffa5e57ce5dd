"""Every request a client sends is built here, in one place (pure: no I/O, no clock).

:class:`RequestBuilder` is bound to one target — GSP, environment, GSTIN, portal username,
``ip-usr``, credentials — and turns the bodies and headers of :mod:`gspauth.protocol` into
:class:`httpx.Request` objects at the URLs the GSP's plugin gives. Each request carries
``extensions["gspauth"]`` (GSTN action, API family, txn) for the plugin's signing context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from gspauth import protocol
from gspauth.auth import EXTENSION
from gspauth.types import Api, Credentials

if TYPE_CHECKING:
    from gspauth.plugins import Hooks

__all__ = ["RequestBuilder"]


@dataclass(frozen=True)
class RequestBuilder:
    """Builds the requests of one taxpayer session target."""

    hooks: Hooks
    gsp: str
    environment: str
    gstin: str
    username: str
    ip_usr: str
    credentials: Credentials
    auth_version: str | None = None

    def url(self, api: Api, version: str | None, path: str = "", *, action: str | None = None) -> str:
        """The absolute URL of ``api`` (+ ``path``) for this GSP and environment."""
        return self.hooks.endpoint_url(self.gsp, api, self.environment, version, path=path, action=action)

    @staticmethod
    def _request(method: str, url: str, headers: Mapping[str, str], *, action: str, api: Api, txn: str,
                 params: Mapping[str, str] | None = None, content: bytes | None = None) -> httpx.Request:
        request = httpx.Request(method, url, headers=headers, params=params or None, content=content)
        request.extensions[EXTENSION] = {"action": action, "api": api, "txn": txn}
        return request

    def auth(self, call: protocol.AuthCall, txn: str) -> httpx.Request:
        """``POST …/authenticate`` carrying ``call`` (OTPREQUEST, AUTHTOKEN, REFRESHTOKEN, LOGOUT)."""
        headers = protocol.auth_headers(gstin=self.gstin, username=self.username, ip_usr=self.ip_usr, txn=txn,
                                        credentials=self.credentials)
        return self._request("POST", self.url(Api.AUTH, self.auth_version, action=call.action), headers,
                             action=call.action, api=Api.AUTH, txn=txn, content=call.content())

    def evc_otp(self, *, auth_token: str, params: Mapping[str, str], txn: str) -> httpx.Request:
        """``GET …/authenticate?action=EVCOTP…`` (spec §3.6)."""
        headers = protocol.data_headers(gstin=self.gstin, username=self.username, auth_token=auth_token,
                                        ip_usr=self.ip_usr, txn=txn, credentials=self.credentials)
        return self._request("GET", self.url(Api.AUTH, self.auth_version, action="EVCOTP"), headers,
                             action="EVCOTP", api=Api.AUTH, txn=txn, params=params)

    def data(
        self,
        *,
        method: str,
        api: Api,
        path: str,
        action: str,
        auth_token: str,
        ret_period: str | None,
        params: Mapping[str, object] | None,
        version: str | None,
        txn: str,
        content: bytes | None,
    ) -> httpx.Request:
        """A data call. GET: ``gstin``, ``ret_period`` and ``action`` go in the query; writes
        carry ``content`` (the wrapped payload) or, without one, ``{"action": …}``."""
        headers = protocol.data_headers(gstin=self.gstin, username=self.username, auth_token=auth_token,
                                        ip_usr=self.ip_usr, txn=txn, ret_period=ret_period,
                                        credentials=self.credentials)
        query: dict[str, str] = {}
        if method == "GET":
            content = None
            query["gstin"] = self.gstin
            if ret_period is not None:
                query["ret_period"] = ret_period
            query["action"] = action
        elif content is None:
            content = protocol.encode_payload({"action": action})
        for k, v in (params or {}).items():
            query[str(k)] = str(v)
        return self._request(method, self.url(api, version, path, action=action), headers, action=action, api=api,
                             txn=txn, params=query, content=content)
