"""Broken: a hook argument name gspauth does not define (``credential`` for ``credentials``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gspauth.hookspecs import hookimpl
from gspauth.types import Credentials, GSPInfo


@hookimpl
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    register(GSPInfo(id="misspelt", name="Misspelt GSP", environments={"sandbox": "https://m.example"}))


@hookimpl
def gspauth_sign_headers(gsp: str, credential: Credentials) -> Mapping[str, str] | None:  # BUG: credential
    return None
