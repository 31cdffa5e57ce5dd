"""Separate OS processes for tests that play several workers (other machines, in effect)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
from collections.abc import Callable
from typing import Any

__all__ = ["worker", "worker_processes"]


def worker_processes() -> multiprocessing.context.BaseContext:
    """A fork-server process context: each worker is forked from a clean server process that
    imported gspauth once, so workers start in milliseconds (not the second or two a spawned
    interpreter takes on two cores) and, unlike a plain fork of pytest, inherit no thread,
    lock or connection of the test process. Start workers with :func:`worker`: the server's
    environment is the one it was started with, not the test's."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["gspauth.client", "gspauth.store.postgres", "gspauth.store.sqlite",
                                "gspauth.ledger.postgres", "psycopg", "psycopg_pool", "tests.client.client_support"])
    return ctx


def _in_environment(environ: dict[str, str], target: Callable[..., Any], *args: Any) -> None:
    os.environ.clear()
    os.environ.update(environ)
    target(*args)


def worker(target: Callable[..., Any], *args: Any) -> multiprocessing.process.BaseProcess:
    """A (not yet started) worker process running ``target(*args)`` in this process's current
    environment (the store key, GSPAUTH_HOME … of the test)."""
    return worker_processes().Process(target=_in_environment, args=(dict(os.environ), target, *args))


def gather(procs: list[multiprocessing.process.BaseProcess], results: Any, *, timeout: float) -> list[Any]:
    """Start ``procs``, collect one result each from ``results`` (a queue; fewer if some never
    answer within ``timeout`` seconds), then join them — killing any still alive after 30 s."""
    import queue

    for p in procs:
        p.start()
    outcomes = []
    try:
        for _ in procs:
            outcomes.append(results.get(timeout=timeout))
    except queue.Empty:
        pass
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    return outcomes
