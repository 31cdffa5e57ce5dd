"""Secret redaction: the one place that decides what must never be shown, and how it is hidden.

Everything that prints a header, a URL or a hook argument goes through here: object reprs
(:mod:`gspauth.types`, :mod:`gspauth.session`), the plugin tracer (``GSPAUTH_TRACE_HOOKS``),
request logging in :mod:`gspauth.auth`, httpx's own request log and the emulator's access log.

* A header or query parameter is *sensitive* when its name contains one of
  :data:`SENSITIVE_WORDS` (``auth-token``, ``client-secret``, ``X-CT-Auth-Token``,
  ``X-Asp-Auth-Signature``, ``appkey``, ``session-id``, ``password``, ``otp`` …); its value
  prints as :data:`SECURE`.
* FILEDET download URLs carry a file id that works as a bearer handle
  (``…/files/<32 hex>/<name>.tar.gz``); it prints as ``/files/[secure]/``.
* A password in a URL's user information (``postgresql://user:secret@host/db``) prints as
  ``postgresql://user:[secure]@host/db``; a ``password=…`` pair of a libpq connection string
  as ``password=[secure]``.

:func:`install_log_filters` adds :class:`RedactingFilter` to the ``httpx`` and ``uvicorn``
loggers. It is idempotent and called by the clients and the emulator server when they are
created — never at import time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "SECURE",
    "SENSITIVE_WORDS",
    "RedactingFilter",
    "install_log_filters",
    "is_sensitive",
    "redact_headers",
    "redact_text",
    "redact_url",
    "redact_value",
]

#: What every secret prints as.
SECURE = "[secure]"

#: A header or query parameter whose lower-cased name contains one of these is secret,
#: or telling enough to be treated as one.
SENSITIVE_WORDS: tuple[str, ...] = (
    "secret", "token", "password", "passwd", "key", "signature", "authorization",
    "sek", "session", "otp", "cookie", "rek",
)  # fmt: skip

_FILE_ID = re.compile(r"/files/[0-9a-f]{32}/")
# scheme://user:password@host — the password ends at the last @ before the path.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*:)[^\s/?#]*@")
# a libpq keyword/value connection string: password=secret or password='sec ret'
_CONNINFO_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)
# name=value pairs inside free text (a logged request line): the value ends at &, space or a quote.
_QUERY_PAIR = re.compile(r"([?&])([^=&?\s\"']+)=([^&\s\"']*)")
# Loggers whose records carry request URLs: httpx (client side), uvicorn (the emulator server).
_URL_LOGGERS = ("httpx", "uvicorn.access", "uvicorn.error")


def is_sensitive(name: str) -> bool:
    """``True`` for header or query-parameter names whose values must never be shown."""
    lowered = name.lower()
    return any(word in lowered for word in SENSITIVE_WORDS)


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """A copy of ``headers`` with the values of sensitive headers replaced by ``[secure]``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (SECURE if is_sensitive(k) else v) for k, v in items}


def _pair(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    return f"{sep}{name}={SECURE if is_sensitive(name) and value else value}"


def redact_text(text: str) -> str:
    """``text`` with URL passwords, sensitive query values and FILEDET file ids replaced by ``[secure]``.

    Works on a bare URL and on a log line that contains URLs.
    """
    if "@" in text and "://" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{SECURE}@", text)
    if "=" in text:
        text = _QUERY_PAIR.sub(_pair, text)
        text = _CONNINFO_PASSWORD.sub(lambda m: f"{m.group(1)}{SECURE}", text)
    if "/files/" in text:
        text = _FILE_ID.sub("/files/[secure]/", text)
    return text


def redact_url(url: object) -> str:
    """``url`` (a ``str`` or ``httpx.URL``) as text, redacted as :func:`redact_text` does."""
    return redact_text(str(url))


def redact_value(value: Any) -> str:
    """A log-safe one-line rendering of an arbitrary value (a hook argument or result).

    Requests and responses show method, redacted URL and redacted headers; mappings are
    treated as headers; gspauth's own value types print their (already redacted) reprs;
    anything unknown prints only its type name.
    """
    import httpx  # local: only the tracer and logging need it

    from gspauth import types

    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, httpx.Request):
        return f"<Request {value.method} {redact_url(value.url)} headers={redact_headers(value.headers.multi_items())}>"
    if isinstance(value, httpx.Response):
        return f"<Response [{value.status_code}] for {value.request.method} {redact_url(value.request.url)}>"
    if isinstance(value, Mapping):
        return repr(redact_headers({str(k): str(v) for k, v in value.items()}))
    if isinstance(value, types.REDACTED_REPR_TYPES):
        return repr(value)  # their reprs are redacted by construction
    if isinstance(value, str):
        value = redact_text(value)
        return repr(value) if len(value) <= 120 else repr(value[:117] + "...")
    if callable(value):
        return f"<callable {getattr(value, '__qualname__', type(value).__name__)}>"
    return f"<{type(value).__name__}>"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every URL and string argument of a record, and its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_text(a) if isinstance(a, str) else (redact_url(a) if _is_url(a) else a) for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        return True


def _is_url(value: object) -> bool:
    return type(value).__name__ == "URL" and type(value).__module__.startswith("httpx")


_FILTER = RedactingFilter()


def install_log_filters() -> None:
    """Add the redacting filter to the httpx and uvicorn loggers (once; safe to call again)."""
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(_FILTER)
