"""``gspauth db status|migrate URL``: exit codes, output, and never a traceback or a password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gspauth._pg import Database
from gspauth.testing.postgres import Cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gspauth(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``gspauth ARGS`` in this process: ``(exit code, stdout, stderr)``."""
    from gspauth.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_status_then_migrate_then_status(gspauth: Any, postgres_url: str, postgres_cluster: Cluster) -> None:
    code, out, err = gspauth("db", "status", postgres_url)
    assert code == 1 and "not installed" in out and "gspauth db migrate URL" in err
    code, out, err = gspauth("db", "migrate", postgres_url, "--json")
    assert code == 0, err
    report = json.loads(out)
    states = {c["component"]: (c["state"], c["installed"]) for c in report["components"]}
    assert states["store"] == ("migrated", 1) and states["ledger"] == ("migrated", 1)
    assert states["journal"][0] == "migrated"  # the filing journal's tables too
    code, out, err = gspauth("db", "status", postgres_url)
    assert code == 0 and "up to date" in out and "not installed" not in out, (out, err)
    code, out, _ = gspauth("db", "migrate", postgres_url)
    assert code == 0 and "migrated" not in out.split("STATE", 1)[1]  # nothing left to do
    for text in (out, err):
        assert postgres_cluster.password not in text


def test_a_newer_database_says_upgrade(gspauth: Any, postgres_url: str) -> None:
    assert gspauth("db", "migrate", postgres_url)[0] == 0
    db = Database(postgres_url)
    with db.transaction() as conn:
        conn.execute(db.sql("UPDATE {schema}.gspauth_schema SET version = version + 1 WHERE component = 'store'"))
    db.close()
    code, out, err = gspauth("db", "status", postgres_url, "--json")
    assert code == 1 and "upgrade gspauth" in err
    assert {c["component"]: c["state"] for c in json.loads(out)["components"]}["store"] == "newer than this gspauth"
    code, _, err = gspauth("db", "migrate", postgres_url)
    assert code == 1 and "upgrade gspauth" in err


def test_the_configured_store_is_the_default_url(gspauth: Any, postgres_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_STORE", postgres_url)
    assert gspauth("db", "migrate")[0] == 0
    monkeypatch.setenv("GSPAUTH_STORE", "/tmp/sessions.db")
    code, _, err = gspauth("db", "status")
    assert code == 1 and "postgresql://" in err


@pytest.mark.parametrize("damage", ["port", "password"])
def test_unreachable_or_refused_is_one_line_without_traceback_or_password(postgres_cluster: Cluster,
                                                                           damage: str) -> None:
    url = postgres_cluster.url(schema="t_cli_errors")
    if damage == "port":
        url = url.replace(f":{postgres_cluster.port}/", ":1/")
    else:
        url = url.replace(postgres_cluster.password, "not-it-at-all")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "gspauth", "db", "status", url], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == (69 if damage == "port" else 1), proc.stderr
    assert "Traceback" not in proc.stderr and "psycopg" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("gspauth: error: ") and lines[1].startswith("  hint: "), lines
    assert postgres_cluster.password not in proc.stderr + proc.stdout and "not-it-at-all" not in proc.stderr
