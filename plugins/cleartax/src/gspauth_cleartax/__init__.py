"""ClearTax GSP plugin for gspauth (spec §9).

ClearTax forwards GSTN's taxpayer API unchanged under its own prefix:

* hosts: ``sandbox`` ``https://api-sandbox.clear.in``, ``production`` ``https://api.clear.in``;
  the legacy host profile as extra environments ``legacy-sandbox``
  (``https://sandbox.gsp.cleartax.in``) and ``legacy-production`` (``https://gsp.cleartax.in``);
* URLs: ``{host}/gsp/api`` + GSTN path (legacy hosts: ``{host}/api`` + GSTN path);
* headers: ``X-CT-Auth-Token`` (the static token ClearTax issues: credential ``gsp_token``),
  and on auth calls ``appkey`` = the body's ``app_key``; ``clientid`` / ``client-secret`` only
  if you were given them (new ClearTax users are not). No request signing.
* errors: ClearTax's own layer answers ``{"error_code": "CT4xx", "error_message": ...}``;
  they become :class:`~gspauth.errors.GSPLayerError` with a hint.

Point a host elsewhere (an emulator, a new ClearTax host) by configuration, e.g.
``GSPAUTH_CLEARTAX_SANDBOX_HOST=http://127.0.0.1:8000/cleartax``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from gspauth.errors import ConfigurationError, GSPError, GSPLayerError
from gspauth.hookspecs import hookimpl
from gspauth.replies import gsp_outage, is_gstn_reply, json_object
from gspauth.types import Api, CredentialField, Credentials, Environment, GSPInfo, SigningContext

__all__ = ["GSP", "INFO", "__version__"]
#: This distribution's version.
__version__ = "0.2.0"

#: The GSP id this plugin serves.
GSP = "cleartax"
#: What it registers (:func:`~gspauth.hookspecs.gspauth_register_gsps`).
INFO = GSPInfo(
    id=GSP,
    name="ClearTax GSP",
    environments={
        "sandbox": "https://api-sandbox.clear.in",
        "production": "https://api.clear.in",
        "legacy-sandbox": "https://sandbox.gsp.cleartax.in",
        "legacy-production": "https://gsp.cleartax.in",
    },
    supports_refresh=True,
    capabilities=frozenset({"files", "evc"}),
    docs_url="https://docs.cleartax.in/cleartax-docs/gst-gsp-api/gst-gsp-api-reference",
    description="ClearTax GST GSP: /gsp/api pass-through with X-CT-Auth-Token",
    # ClearTax documents its authenticate API at GSTN version v0.2 (spec §9).
    api_versions={"auth": "v0.2"},
    credentials=(
        CredentialField("gsp_token", "the X-CT-Auth-Token ClearTax issued you (sandbox and production differ)",
                        required=True),
        CredentialField("client_id", "GSTN clientid, only if ClearTax gave you one (new users have none)",
                        secret=False),
        CredentialField("client_secret", "GSTN client-secret that goes with client_id"),
    ),
)

_AUTH_ACTIONS = frozenset({"OTPREQUEST", "AUTHTOKEN", "REFRESHTOKEN", "LOGOUT"})

#: ClearTax layer code → (meaning, hint). The reply shape is inferred (ClearTax does not document it).
_ERRORS: dict[str, tuple[str, str]] = {
    "CT401": ("X-CT-Auth-Token header missing",
              "set Credentials(gsp_token=...) to the X-CT-Auth-Token ClearTax issued you"),
    "CT403": ("X-CT-Auth-Token not recognised",
              "check the X-CT-Auth-Token for this environment (sandbox and production tokens differ)"),
    "CT400": ("appkey header does not match the body's app_key",
              "send the app_key of the request body in the appkey header (the plugin does this for "
              "requests whose JSON body carries app_key)"),
    "CT404": ("no such ClearTax GSP route",
              "check the host: current hosts use the /gsp/api prefix, legacy hosts /api"),
}


def _prefix(environment: Environment) -> str:
    return "/api" if environment.startswith("legacy-") else "/gsp/api"


@hookimpl
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    register(INFO)


@hookimpl
def gspauth_endpoint_url(gsp: str, api: Api, environment: Environment, version: str, host: str) -> str | None:
    if gsp != GSP:
        return None
    return host + _prefix(environment) + api.path(version)


def _body_app_key(request: httpx.Request) -> str | None:
    body = json_object(request.content) if b"app_key" in request.content else None
    value = body.get("app_key") if body is not None else None
    return value if isinstance(value, str) else None


@hookimpl
def gspauth_sign_headers(
    gsp: str, request: httpx.Request, context: SigningContext, credentials: Credentials
) -> Mapping[str, str] | None:
    if gsp != GSP:
        return None
    token = credentials.get("gsp_token")
    if not token:
        raise ConfigurationError("ClearTax needs Credentials(gsp_token=...): the X-CT-Auth-Token ClearTax issued")
    headers = {"X-CT-Auth-Token": token}
    if credentials.client_id and credentials.client_secret:
        headers["clientid"] = credentials.client_id
        headers["client-secret"] = credentials.client_secret
    is_auth = context.api is Api.AUTH or request.url.path.endswith("/authenticate") or (
        context.action in _AUTH_ACTIONS
    )
    if is_auth:
        app_key = _body_app_key(request)
        if app_key is not None:
            headers["appkey"] = app_key
    return headers


@hookimpl
def gspauth_check_credentials(gsp: str, credentials: Credentials) -> None:
    if gsp != GSP:
        return
    if bool(credentials.client_id) != bool(credentials.client_secret):
        raise ConfigurationError("ClearTax: set client_id and client_secret together, or neither")


@hookimpl
def gspauth_map_error(gsp: str, response: httpx.Response) -> GSPError | None:
    if gsp != GSP:
        return None
    body = json_object(response.content)
    if body is not None and not is_gstn_reply(body) and isinstance(body.get("error_code"), str):
        code = body["error_code"]
        meaning, hint = _ERRORS.get(code, (None, "see ClearTax's GSP documentation for this code"))
        message = body.get("error_message") if isinstance(body.get("error_message"), str) else None
        return GSPLayerError(message or meaning or "ClearTax refused the request", error_code=code,
                             status_code=response.status_code, hint=hint, gsp=GSP)
    return gsp_outage(GSP, "ClearTax", response)
