"""Reading GSP replies and request bodies inside plugin hooks (``gspauth_map_error`` …).

Small, pure helpers that every pass-through plugin needs in the same form. They decide
nothing for you: your hook still says which replies are your GSP's and what they mean.

::

    from gspauth.replies import gsp_outage, is_gstn_reply, json_object

    @hookimpl
    def gspauth_map_error(gsp, response):
        if gsp != GSP:
            return None
        body = json_object(response.content)
        if body is not None and not is_gstn_reply(body) and "acme_error" in body:
            return GSPLayerError(...)
        return gsp_outage(GSP, "Acme", response)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gspauth.errors import ServerError

if TYPE_CHECKING:
    import httpx

__all__ = ["gsp_outage", "is_gstn_reply", "json_object"]


def json_object(content: bytes) -> dict[str, Any] | None:
    """``content`` parsed as a JSON object; ``None`` if it is empty, not JSON or not an object.

    Works for ``request.content`` and ``response.content`` alike (both already read in hooks).
    """
    if not content or not content.lstrip().startswith(b"{"):
        return None
    try:
        parsed = json.loads(content)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def is_gstn_reply(body: object) -> bool:
    """``True`` when ``body`` is GSTN's own envelope (it carries ``status_cd``).

    Such replies, successes and GSTN errors (``AUTH4033`` …) alike, belong to the core:
    ``gspauth_map_error`` returns ``None`` for them.
    """
    return isinstance(body, dict) and "status_cd" in body


def gsp_outage(gsp: str, name: str, response: httpx.Response) -> ServerError | None:
    """A retryable :class:`~gspauth.errors.ServerError` when ``response`` is an HTTP 5xx that is
    not a GSTN envelope (the GSP's own layer failed), else ``None``.

    :param gsp: GSP id, recorded on the error.
    :param name: display name for the message (``"ClearTax"``).
    """
    if response.status_code < 500 or is_gstn_reply(json_object(response.content)):
        return None
    return ServerError(f"{name} answered HTTP {response.status_code}", status_code=response.status_code,
                       hint=f"{name} or GSTN is unavailable; retry later", gsp=gsp)
