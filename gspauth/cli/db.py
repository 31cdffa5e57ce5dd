"""``gspauth db status|migrate [URL]``: the schema versions of a shared PostgreSQL database.

Every component gspauth keeps in PostgreSQL (the session store, the consent ledger, the filing
journal) has its own version in ``<schema>.gspauth_schema``. ``status`` compares them with
what this gspauth writes; ``migrate`` brings them up to date (one transaction per component,
under an advisory lock: safe while other processes start). Neither needs the store key.

Run ``migrate`` from a deploy step (a Kubernetes Job or init container) as a role that may
create tables in the schema, and start the workers with ``?migrate=never`` (or
``GSPAUTH_DB_MIGRATE=never``) under a role that may only read and write them.

Exit codes: 0 up to date (``status``) or migrated (``migrate``); 1 a component needs migrating,
is newer than this gspauth, or the database refused; 69 the server cannot be reached.
"""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from gspauth.cli import Exit
from gspauth.cli._common import print_json, profile_from_args

if TYPE_CHECKING:
    from gspauth._pg import Component, Database

__all__ = ["register"]

# Modules defining the PostgreSQL components (each a module-level gspauth._pg.Component); one
# not shipped in this build is skipped.
_COMPONENT_MODULES = ("gspauth.store.postgres", "gspauth.ledger.postgres", "gspauth.journal.postgres")


def _components() -> list[Component]:
    from gspauth._pg import Component

    found: list[Component] = []
    for name in _COMPONENT_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        own = [v for v in vars(module).values() if isinstance(v, Component)]
        found += [c for c in own if c not in found]
    return found


def _database(args: argparse.Namespace) -> Database:
    from gspauth._pg import Database, is_postgres_url
    from gspauth.errors import ConfigurationError

    url = args.url or profile_from_args(args).store
    if not url or not is_postgres_url(str(url)):
        raise ConfigurationError("give the database as a postgresql:// URL (or set GSPAUTH_STORE / `store =` in "
                                 "config.toml to one); `gspauth db` manages PostgreSQL schemas only")
    return Database(str(url), what="db command")


def _state(component: Component, installed: int | None) -> str:
    if not installed:
        return "not installed"
    if installed < component.version:
        return "needs migrating"
    if installed > component.version:
        return "newer than this gspauth"
    return "up to date"


def _report(db: Database, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json({"database": db.url.display, "schema": db.schema, "components": rows})
        return
    print(f"database {db.url.display} (schema {db.schema})")
    table = [("COMPONENT", "INSTALLED", "THIS GSPAUTH", "STATE")]
    table += [(r["component"], str(r["installed"] or "-"), str(r["version"]), r["state"]) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cmd_status(args: argparse.Namespace) -> int:
    from gspauth.errors import ConfigurationError

    db = _database(args)
    try:
        installed = db.versions()
        rows = [{"component": c.name, "installed": installed.get(c.name), "version": c.version,
                 "state": _state(c, installed.get(c.name))} for c in _components()]
    finally:
        db.close()
    _report(db, rows, args.json)
    if any(r["state"] == "newer than this gspauth" for r in rows):
        raise ConfigurationError("the database was migrated by a newer gspauth; upgrade gspauth here")
    if any(r["state"] != "up to date" for r in rows):
        raise ConfigurationError("the database schema is behind this gspauth; run `gspauth db migrate URL`")
    return Exit.OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    db = _database(args)
    rows = []
    try:
        for component in _components():
            before, after = db.migrate(component)
            rows.append({"component": component.name, "installed": after, "version": component.version,
                         "before": before or None, "state": "migrated" if before != after else "up to date"})
    finally:
        db.close()
    _report(db, rows, args.json)
    return Exit.OK


def register(subparsers: Any) -> None:
    """Add ``gspauth db status|migrate`` to the CLI's sub-commands."""
    p = subparsers.add_parser(
        "db", help="schema versions of a shared PostgreSQL database (status, migrate)",
        description="Every component gspauth keeps in PostgreSQL (session store, consent ledger, filing journal) "
                    "has its own schema version. status compares them with this gspauth's; migrate brings them up "
                    "to date (safe while other processes start). Run migrate from a deploy step as a role that may "
                    "create tables, and the workers with ?migrate=never. Neither needs the store key.")
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, text in (("status", _cmd_status, "compare the database's schema versions with this gspauth's"),
                             ("migrate", _cmd_migrate, "create or upgrade every component's tables")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("url", nargs="?", metavar="URL",
                        help="postgresql://user@host:5432/db?schema=gspauth (default: the configured store; the "
                             "password from PGPASSWORD or ~/.pgpass, not the command line)")
        sp.add_argument("--profile", help="profile name in config.toml (its store is the default URL)")
        sp.add_argument("--store", help=argparse.SUPPRESS)
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        sp.set_defaults(func=func)
