"""Built-in plugin ``gstn-direct``: GSTN's own URL layout, ``clientid``/``client-secret`` only.

For callers that hold GSTN client credentials themselves (GSPs, and tests), and for the
emulator's ``{root}/generic`` pass-through, which forwards any GSP prefix to GSTN: point the
host at it with ``GSPAUTH_GSTN_DIRECT_SANDBOX_HOST=http://127.0.0.1:<port>/generic`` or
``Hooks(pm, hosts={("gstn-direct", "sandbox"): ...})``.

It is registered by :func:`gspauth.plugins.get_plugin_manager` (``DEFAULT_PLUGINS``) through
the same hooks as any installed plugin; block it with ``GSPAUTH_BLOCKED_PLUGINS=gspauth.direct``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gspauth.errors import ConfigurationError
from gspauth.hookspecs import hookimpl
from gspauth.types import Api, CredentialField, Credentials, GSPInfo

__all__ = ["GSP", "INFO"]

#: This plugin's GSP id.
GSP = "gstn-direct"
#: What it registers (:func:`~gspauth.hookspecs.gspauth_register_gsps`).
INFO = GSPInfo(
    id=GSP,
    name="GSTN (direct)",
    environments={"sandbox": "https://devapi.gst.gov.in", "production": "https://api.gst.gov.in"},
    description="GSTN's own URL layout with clientid/client-secret; also the emulator's /generic pass-through",
    credentials=(
        CredentialField("client_id", "the clientid GSTN issued", required=True, secret=False),
        CredentialField("client_secret", "the client-secret GSTN issued", required=True),
    ),
)


@hookimpl
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    register(INFO)


@hookimpl
def gspauth_endpoint_url(gsp: str, api: Api, version: str, host: str) -> str | None:
    if gsp != GSP:
        return None
    return host + api.path(version)


@hookimpl
def gspauth_sign_headers(gsp: str, credentials: Credentials) -> Mapping[str, str] | None:
    if gsp != GSP:
        return None
    if not credentials.client_id or not credentials.client_secret:
        raise ConfigurationError("gstn-direct needs Credentials(client_id=..., client_secret=...)")
    return {"clientid": credentials.client_id, "client-secret": credentials.client_secret}
