"""What only the PostgreSQL journal has: claims held by a database session (lost with it),
versioned schema, and a URL whose password never shows."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gspauth.errors import ConfigurationError, LockLost
from gspauth.journal import ChunkState, open_journal
from gspauth.journal.postgres import PostgresJournal
from gspauth.testing.postgres import Cluster
from tests.journal.test_contract import FP, A, rec


@pytest.fixture
def journal(postgres_url: str) -> Iterator[PostgresJournal]:
    j = open_journal(postgres_url)
    assert isinstance(j, PostgresJournal)
    try:
        yield j
    finally:
        j.close()


def test_a_claim_lost_with_its_connection_stops_the_sender(journal: PostgresJournal, postgres_url: str,
                                                           postgres_cluster: Cluster) -> None:
    run = journal.begin_run({})
    records = [rec(A, 1), rec(A, 2)]
    journal.classify(run, "in", records)
    journal.plan_chunk("t1", A, FP, "b2b", "RETSAVE", "c" * 64, 10, [(r[3], r[4]) for r in records])
    assert journal.claim(A)
    pid = journal._claim_conn.info.backend_pid  # type: ignore[union-attr]
    with postgres_cluster.connect() as admin:  # the server drops the session (failover, idle kill …)
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    other = open_journal(postgres_url)
    try:
        assert other.claim(A)  # the lock went with the session: another filer takes the GSTIN
        with pytest.raises(LockLost) as info:
            journal.mark_sent("t1")
        assert A in str(info.value) and info.value.hint and "gspauth file" in info.value.hint
        # nothing was recorded as sent by the filer that lost its claim
        (chunk,) = journal.chunks()
        assert chunk.state == ChunkState.PLANNED and chunk.attempts == 0
        assert {str(r.state) for r in journal.invoices()} == {"pending"}
        other.mark_sent("t1")  # the new holder goes on
        assert journal.chunks()[0].state == ChunkState.SENT
        # the old one can claim again once the new holder is done (a fresh connection)
        other.release(A)
        assert journal.claim(A)
    finally:
        other.close()


def test_a_newer_schema_is_refused_and_an_older_one_not_migrated_without_consent(
        postgres_url: str, postgres_cluster: Cluster) -> None:
    open_journal(postgres_url).close()  # creates version 1
    schema = postgres_url.rsplit("schema=", 1)[1]
    with postgres_cluster.connect() as admin:
        admin.execute(f'UPDATE "{schema}".gspauth_schema SET version = 99 WHERE component = %s', ("journal",))
    with pytest.raises(ConfigurationError, match="upgrade gspauth"):
        open_journal(postgres_url)
    fresh = postgres_url.replace(f"schema={schema}", f"schema={schema}_b") + "&migrate=never"
    with pytest.raises(ConfigurationError, match="gspauth db migrate"):
        open_journal(fresh)


def test_the_password_never_shows(journal: PostgresJournal, postgres_cluster: Cluster,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert postgres_cluster.password not in repr(journal) and postgres_cluster.password not in journal.url
    bad = postgres_cluster.url(schema="x").replace(postgres_cluster.password, "wrong-" + postgres_cluster.password)
    with pytest.raises(ConfigurationError) as info:
        open_journal(bad)
    assert postgres_cluster.password not in str(info.value)
    assert postgres_cluster.password not in caplog.text
