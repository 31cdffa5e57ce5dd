"""gspauth._pg: URLs, versioned migrations, typed errors — against the throw-away server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_workers as workers

from gspauth._pg import Component, Database, parse_url
from gspauth.errors import ConfigurationError, GSPAuthError, Unreachable
from tests.processes import worker, worker_processes

V1 = ("CREATE TABLE {schema}.things (id INTEGER PRIMARY KEY)",)
V2 = ("ALTER TABLE {schema}.things ADD COLUMN name TEXT",)
THINGS = Component("things", (V1, V2), "thing registry")


def test_url_parameters_are_gspauths_and_the_rest_is_libpqs(monkeypatch: pytest.MonkeyPatch) -> None:
    url = parse_url("postgresql://me:s3cr%40t@db.example:5433/app?sslmode=require&schema=tenant_7&pool_max=3"
                    "&migrate=never&connect_timeout=5")
    assert (url.schema, url.migrate, url.pool_max, url.password) == ("tenant_7", "never", 3, "s3cr@t")
    assert "schema" not in url.conninfo and "sslmode=require" in url.conninfo and "connect_timeout=5" in url.conninfo
    assert "s3cr" not in str(url) and "s3cr" not in repr(url) and "[secure]" in url.display
    monkeypatch.setenv("GSPAUTH_DB_SCHEMA", "from_env")
    monkeypatch.setenv("GSPAUTH_DB_MIGRATE", "never")
    assert parse_url("postgres://h/db").schema == "from_env" and parse_url("postgres://h/db").migrate == "never"
    assert parse_url("postgres://h/db?schema=url_wins").schema == "url_wins"
    monkeypatch.delenv("GSPAUTH_DB_SCHEMA")
    assert parse_url("postgres://h/db").schema == "gspauth"


@pytest.mark.parametrize("bad", ["postgresql://h/db?schema=Robert'); DROP", "postgresql://h/db?schema=1abc",
                                 "postgresql://h/db?migrate=sometimes", "postgresql://h/db?pool_max=0",
                                 "mysql://h/db"])
def test_bad_settings_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(bad)


def test_fresh_schema_is_created_and_migrated(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        assert db.versions() == {}
        assert db.ensure(THINGS) == 2
        assert db.versions() == {"things": 2}
        with db.transaction() as conn:
            conn.execute(db.sql("INSERT INTO {schema}.things (id, name) VALUES (1, 'a')"))
        assert db.ensure(THINGS) == 2  # up to date: nothing to do
        assert db.read("SELECT id, name FROM {schema}.things") == [(1, "a")]
    finally:
        db.close()


def test_an_older_schema_is_migrated_in_place(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        assert db.ensure(Component("things", (V1,))) == 1
        with db.transaction() as conn:
            conn.execute(db.sql("INSERT INTO {schema}.things (id) VALUES (7)"))
        assert db.migrate(THINGS) == (1, 2)
        assert db.read("SELECT id, name FROM {schema}.things") == [(7, None)]
    finally:
        db.close()


def test_too_new_is_refused_with_upgrade_hint(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        db.ensure(THINGS)
        with pytest.raises(ConfigurationError, match="newer than this gspauth.*upgrade gspauth"):
            db.ensure(Component("things", (V1,), "thing registry"))
    finally:
        db.close()


def test_too_old_with_auto_migration_off_names_the_command(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        db.ensure(Component("things", (V1,)))
        off = Database(postgres_url + "&migrate=never")
        with pytest.raises(ConfigurationError, match=r"gspauth db migrate URL") as info:
            off.ensure(THINGS)
        assert "version 1" in str(info.value) and "[secure]" in str(info.value)
        assert off.versions() == {"things": 1}  # nothing was changed
        with pytest.raises(ConfigurationError, match="not installed"):
            off.ensure(Component("other", (("CREATE TABLE {schema}.other (x INT)",),)))
        off.close()
    finally:
        db.close()


def test_concurrent_first_start_migrates_once(postgres_url: str) -> None:
    ctx = worker_processes()
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [worker(workers.ensure_component, postgres_url, barrier, results) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(30)
    assert sorted(outcomes) == [("ok", 0, 2)] + [("ok", 2, 2)] * (n - 1), outcomes  # one migrated, the rest found it done


def test_unreachable_server_is_typed_and_quick() -> None:
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = Database(f"postgresql://app:hunter2secret@127.0.0.1:{port}/db?connect_timeout=3")
    start = time.monotonic()
    with pytest.raises(Unreachable) as info:
        db.ensure(THINGS)
    assert time.monotonic() - start < 5
    assert "hunter2secret" not in str(info.value) and info.value.hint and "[secure]" in str(info.value)


def test_wrong_password_and_missing_database_are_configuration_errors(postgres_cluster, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    wrong = postgres_url.replace(postgres_cluster.password, "not-the-password-xyz")
    with pytest.raises(ConfigurationError, match="refused the login") as info:
        Database(wrong).ensure(THINGS)
    assert "not-the-password-xyz" not in str(info.value) and "PGPASSWORD" in str(info.value)
    missing = postgres_cluster.url("no_such_db")
    with pytest.raises(ConfigurationError, match="does not exist") as info2:
        Database(missing).ensure(THINGS)
    assert postgres_cluster.password not in str(info2.value)


def test_libpq_environment_is_honoured(postgres_cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = postgres_cluster.url(schema="t_env_password", password=False)
    monkeypatch.setenv("PGPASSWORD", postgres_cluster.password)
    db = Database(url)
    try:
        assert db.ensure(THINGS) == 2
    finally:
        db.close()
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    c = postgres_cluster
    passfile.write_text(f"{c.host}:{c.port}:{c.database}:{c.user}:{c.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    db = Database(url + "&sslmode=disable&connect_timeout=5")  # libpq's own parameters pass through
    try:
        assert db.versions() == {"things": 2}
    finally:
        db.close()
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="PGPASSWORD"):
        Database(url).versions()


def test_errors_are_gspauth_errors_without_the_password(postgres_cluster, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    db = Database(postgres_url)
    try:
        db.ensure(THINGS)
        with pytest.raises(GSPAuthError) as info:
            with db.transaction() as conn:
                conn.execute(db.sql("INSERT INTO {schema}.things (id) VALUES (1), (1)"))
        assert type(info.value).__name__ == "DatabaseError" and info.value.sqlstate == "23505"  # type: ignore[attr-defined]
        assert postgres_cluster.password not in str(info.value)
    finally:
        db.close()
