"""The effects a client's lifecycle flows yield, and the two drivers that perform them.

Each operation (authenticate, refresh, a data call …) is written once, as a generator that
*yields* what it needs done — send this request, call this blocking function, sleep, take or
give back the session lock — and receives the result (or has the exception thrown in). It does
no I/O itself. :func:`drive` runs a flow with blocking calls (:class:`gspauth.Client`);
:func:`drive_async` awaits them (:class:`gspauth.AsyncClient`). This is httpx's
``auth_flow`` shape, applied to the whole session lifecycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

__all__ = ["Call", "Effect", "Flow", "Lock", "Send", "Sleep", "Unlock", "drive", "drive_async"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Send:
    """Send ``request`` and read the whole reply; ``signed=False`` sends it as built (no GSP signing)."""

    request: httpx.Request
    signed: bool = True


@dataclass(frozen=True)
class Call:
    """Call a blocking function (store, ledger, OTP provider, bulk crypto) and return its result."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Lock:
    """Take the session's single-flight lock (threads and processes); the result is a handle."""


@dataclass(frozen=True)
class Unlock:
    handle: Any = field(repr=False)


Effect = Send | Call | Sleep | Lock | Unlock
#: A lifecycle flow: yields effects, receives their results, returns ``T``.
Flow = Generator[Effect, Any, _T]


def drive(flow: Flow[_T], perform: Callable[[Effect], Any]) -> _T:
    """Run ``flow`` to its end, performing each effect with the blocking ``perform``."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            result: _T = stop.value
            return result
        value, error = None, None
        try:
            value = perform(effect)
        except BaseException as exc:  # noqa: BLE001 - handed to the flow, which re-raises what it does not handle
            error = exc


async def drive_async(flow: Flow[_T], perform: Callable[[Effect], Awaitable[Any]]) -> _T:
    """Run ``flow`` to its end, awaiting ``perform`` for each effect."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            result: _T = stop.value
            return result
        value, error = None, None
        try:
            value = await perform(effect)
        except BaseException as exc:  # noqa: BLE001 - handed to the flow
            error = exc
