"""The throw-away cluster the PostgreSQL tests run on: loopback only, password required,
one schema per test, gone afterwards."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from gspauth.testing.postgres import Cluster, PostgresUnavailable, ensure_server, find_bindir, throwaway_cluster


def test_password_is_required_and_only_loopback_listens(postgres_cluster: Cluster) -> None:
    c = postgres_cluster
    assert c.host == "127.0.0.1" and c.password not in repr(c)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=c.host, port=c.port, user=c.user, dbname=c.database, password="wrong", connect_timeout=5)
    with c.connect() as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        assert listen == ("127.0.0.1",)
    sock_dir = c.directory / "sock"
    assert stat.S_IMODE(sock_dir.stat().st_mode) == 0o700


def test_each_test_gets_its_own_schema(postgres_url: str, postgres_cluster: Cluster) -> None:
    assert postgres_url.startswith(f"postgresql://{postgres_cluster.user}:") and "?schema=t_" in postgres_url
    assert postgres_cluster.url(password=False).count(":") == 2  # scheme and port only


def test_a_cluster_is_removed_when_its_block_raises() -> None:
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"):
        with throwaway_cluster() as c:
            seen.append(c.directory)
            with c.connect() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            raise RuntimeError("boom")
    assert seen and not seen[0].exists()


def test_no_server_and_no_install_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import gspauth.testing.postgres as pg

    monkeypatch.setattr(pg, "find_bindir", lambda: None)
    with pytest.raises(PostgresUnavailable, match="apt-get install postgresql"):
        ensure_server(install=False)


def test_the_server_is_found() -> None:
    bindir = find_bindir()
    assert bindir is not None and os.access(bindir / "initdb", os.X_OK)
