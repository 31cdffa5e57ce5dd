"""PostgreSQL plumbing under the session store, the consent ledger and the filing journal.

One :class:`Database` per component object (a store, a ledger, a journal) and process:

* **URLs.** ``postgresql://`` or ``postgres://`` URLs as libpq reads them (``sslmode``,
  ``connect_timeout``, ``PGPASSWORD``, ``PGPASSFILE``, ``PGSSLROOTCERT`` … all honoured: the
  URL goes to libpq unchanged) plus gspauth's own query parameters, removed before libpq sees
  them — ``schema`` (default ``gspauth``; env ``GSPAUTH_DB_SCHEMA``), ``migrate``
  (``auto`` | ``never``; env ``GSPAUTH_DB_MIGRATE``), ``pool_max`` (connections per process
  and component, default 8; env ``GSPAUTH_DB_POOL_MAX``) and ``pool_timeout`` (seconds to wait
  for a pooled connection, default 30). The password never appears in a repr, a log line or
  an error: :attr:`PgUrl.display` is the redacted form.
* **Connections.** A bounded pool per process (psycopg-pool: connections checked before
  use, replaced after a failover, recycled hourly) for short transactions, and dedicated
  connections (:meth:`Database.connect`) for what must hold a session — advisory locks,
  ``LISTEN``. A forked child never touches its parent's connections: the pool is rebuilt
  on first use in the child and the inherited one is kept, unused and unclosed (closing it
  would end the parent's sessions on the server).
* **Versioned migrations.** Each component (:class:`Component`: a name and its list of
  migrations) has a version in ``<schema>.gspauth_schema``. :meth:`Database.ensure` brings
  the schema to the component's version in one transaction under an advisory lock, so many
  processes starting at once migrate once; a database newer than this gspauth is refused
  ("upgrade gspauth"), an older one with auto-migration off too (``gspauth db migrate URL``).
* **Errors.** psycopg's exceptions become gspauth's (:func:`translate`): an unreachable
  server is :class:`~gspauth.errors.Unreachable`, a lost connection
  :class:`~gspauth.errors.ConnectionLost`, a wrong password, a missing database or a missing
  privilege :class:`~gspauth.errors.ConfigurationError` — each with a hint; anything else
  :class:`~gspauth.errors.DatabaseError`.

SQL written for :class:`Database` names tables as ``{schema}.name``; :meth:`Database.sql`
puts the quoted schema in. Only schema names matching ``[a-z_][a-z0-9_]*`` are accepted, so
the substitution can never inject SQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from gspauth.errors import (
    ConfigurationError,
    ConnectionLost,
    DatabaseError,
    GSPAuthError,
    Unreachable,
)

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

    Connection = psycopg.Connection[tuple[Any, ...]]

__all__ = [
    "DEFAULT_SCHEMA",
    "MIGRATE_ENV",
    "POOL_MAX_ENV",
    "SCHEMA_ENV",
    "AdvisoryLock",
    "Component",
    "Database",
    "MigrateMode",
    "PgUrl",
    "is_postgres_url",
    "parse_url",
    "translate",
    "translated",
]

log = logging.getLogger("gspauth.db")

DEFAULT_SCHEMA = "gspauth"
#: Environment variable naming the schema (the URL's ``?schema=`` wins).
SCHEMA_ENV = "GSPAUTH_DB_SCHEMA"
#: ``auto`` (default) or ``never``: whether an older schema is migrated when opened.
MIGRATE_ENV = "GSPAUTH_DB_MIGRATE"
#: Connections per process and component (the URL's ``?pool_max=`` wins).
POOL_MAX_ENV = "GSPAUTH_DB_POOL_MAX"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_OWN_PARAMS = ("schema", "migrate", "pool_max", "pool_timeout")
_SCHEMES = ("postgresql://", "postgres://")

MigrateMode = Literal["auto", "never"]


def is_postgres_url(text: str) -> bool:
    """``True`` for ``postgresql://`` and ``postgres://`` URLs."""
    return text.lower().startswith(_SCHEMES)


@dataclass(frozen=True)
class PgUrl:
    """A parsed database URL: what libpq gets, and gspauth's own settings.

    ``str()`` and ``repr()`` give :attr:`display`, never the password.
    """

    conninfo: str = field(repr=False)
    schema: str
    migrate: MigrateMode
    pool_max: int
    pool_timeout: float
    display: str
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.display

    def with_schema(self, schema: str) -> PgUrl:
        """The same server and database, another schema."""
        return parse_url(self.conninfo, schema=schema, migrate=self.migrate, pool_max=self.pool_max,
                         pool_timeout=self.pool_timeout, _password=self.password)


def _redacted(url: str) -> str:
    from gspauth.redact import redact_text

    return redact_text(url)


def parse_url(url: str, *, schema: str | None = None, migrate: MigrateMode | None = None,
              pool_max: int | None = None, pool_timeout: float | None = None, _password: str | None = None) -> PgUrl:
    """Split a ``postgresql://`` URL into libpq's part and gspauth's settings.

    Keyword arguments win over the URL's parameters, which win over the environment.

    :raises ConfigurationError: not a PostgreSQL URL, or a bad gspauth parameter.
    """
    if not is_postgres_url(url):
        raise ConfigurationError(f"not a PostgreSQL URL: {_redacted(url)!r} (expected postgresql://…)")
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in params if k in _OWN_PARAMS}
    libpq = [(k, v) for k, v in params if k not in _OWN_PARAMS]
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(libpq), parts.fragment))
    display = _redacted(conninfo)

    name = schema or own.get("schema") or os.environ.get(SCHEMA_ENV) or DEFAULT_SCHEMA
    if not _SCHEMA_NAME.match(name):
        raise ConfigurationError(f"schema {name!r} for {display}: use lower-case letters, digits and _ (at most 63, "
                                 "not starting with a digit)")
    mode = (migrate or own.get("migrate") or os.environ.get(MIGRATE_ENV) or "auto").strip().lower()
    if mode not in ("auto", "never"):
        raise ConfigurationError(f"migrate={mode!r} for {display}: use auto (migrate an older schema when opened) "
                                 "or never (refuse it; run `gspauth db migrate URL`)")
    try:
        size = pool_max if pool_max is not None else int(own.get("pool_max") or os.environ.get(POOL_MAX_ENV) or 8)
        wait = pool_timeout if pool_timeout is not None else float(own.get("pool_timeout") or 30)
    except ValueError:
        raise ConfigurationError(f"pool_max / pool_timeout for {display} must be numbers") from None
    if size < 1 or wait <= 0:
        raise ConfigurationError(f"pool_max must be at least 1 and pool_timeout positive for {display}")
    password = _password if _password is not None else (unquote(parts.password) if parts.password else None)
    if password is None:
        password = dict(libpq).get("password")
    return PgUrl(conninfo=conninfo, schema=name, migrate=mode, pool_max=size,  # type: ignore[arg-type]
                 pool_timeout=wait, display=display, password=password)


# -- errors ---------------------------------------------------------------------------------------

_UNREACHABLE = (
    "connection refused", "could not translate host name", "timeout expired", "no route to host",
    "network is unreachable", "name or service not known", "could not connect to server",
    "temporary failure in name resolution", "no such file or directory", "connection timed out",
    "the database system is starting up", "the database system is shutting down", "is the server running",
)  # fmt: skip
_LOST = (
    "server closed the connection", "terminating connection", "connection is lost", "connection is closed",
    "consuming input failed", "ssl syscall error", "eof detected", "connection reset", "broken pipe",
    "the connection is closed", "could not receive data", "could not send data", "connection not open",
)  # fmt: skip
_AUTH = ("password authentication failed", "no password supplied", "authentication failed",
         "no pg_hba.conf entry", "role \"", "peer authentication failed")


def _scrub(text: str, url: PgUrl | None) -> str:
    if url is not None and url.password:
        text = text.replace(url.password, "[secure]")
    return _redacted(text).strip()


def translate(exc: BaseException, url: PgUrl | None = None, *, connecting: bool = False) -> GSPAuthError:
    """psycopg's (or psycopg-pool's) exception as the gspauth error to raise instead.

    :param connecting: the error came from opening a connection (so nothing was sent).
    """
    import psycopg
    from psycopg import errors as pge

    where = url.display if url is not None else "the database"
    host = url.display.split("?")[0] if url is not None else None
    text = _scrub(str(exc), url)
    first = re.sub(r"\s+", " ", text.splitlines()[0]) if text else type(exc).__name__
    first = first.removeprefix("connection failed: ")
    lowered = text.lower()
    if type(exc).__name__ == "PoolTimeout":
        waited = url.pool_timeout if url is not None else 30.0
        return Unreachable(f"no PostgreSQL connection to {where} within {waited:g}s", host=host,
                           hint="the server is down or unreachable, or every pooled connection is busy (raise "
                                "pool_max in the URL, or max_connections on the server)")
    sqlstate = getattr(getattr(exc, "diag", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
    if isinstance(exc, pge.InsufficientPrivilege):
        return ConfigurationError(
            f"the PostgreSQL role used for {where} lacks a privilege: {first}; grant it (USAGE and CREATE on the "
            "schema, or ownership), or run `gspauth db migrate URL` as the schema's owner and use ?migrate=never")
    missing_db = connecting and "does not exist" in lowered and "database" in lowered
    if isinstance(exc, pge.InvalidCatalogName) or missing_db:
        return ConfigurationError(f"{first} ({where}); create it (`createdb NAME`) or fix the URL's database name")
    if isinstance(exc, (pge.InvalidPassword, pge.InvalidAuthorizationSpecification)) or (
            connecting and any(w in lowered for w in _AUTH)):
        return ConfigurationError(
            f"PostgreSQL refused the login for {where}: {first}; check the user, and give the password in "
            "PGPASSWORD, a ~/.pgpass file (PGPASSFILE) or the URL — never on a shared command line")
    if isinstance(exc, psycopg.OperationalError) and any(w in lowered for w in _UNREACHABLE) and (
            connecting or not any(w in lowered for w in _LOST)):
        return Unreachable(f"cannot reach PostgreSQL at {where}: {first}", host=host,
                           hint="check the host and port, that the server runs and accepts TCP connections "
                                "from here (listen_addresses, pg_hba.conf, firewalls), and connect_timeout")
    if connecting and isinstance(exc, psycopg.OperationalError) and ("ssl" in lowered or "certificate" in lowered):
        return ConfigurationError(f"TLS to PostgreSQL at {where} failed: {first}; check sslmode, sslrootcert and "
                                  "the server's certificate")
    if isinstance(exc, (pge.AdminShutdown, pge.CrashShutdown, pge.CannotConnectNow)) or (
            isinstance(exc, psycopg.OperationalError) and any(w in lowered for w in _LOST)):
        return ConnectionLost(f"the connection to PostgreSQL at {where} was lost: {first}", host=host,
                              hint="the transaction was rolled back on the server; safe to retry")
    if connecting and isinstance(exc, psycopg.OperationalError):
        return Unreachable(f"cannot connect to PostgreSQL at {where}: {first}", host=host,
                           hint="check the URL, the server and the network")
    if isinstance(exc, psycopg.ProgrammingError) and "invalid" in lowered and "option" in lowered:
        return ConfigurationError(f"the PostgreSQL URL {where} is malformed: {first}")
    if isinstance(exc, pge.ReadOnlySqlTransaction):
        return ConfigurationError(f"PostgreSQL at {where} is read-only ({first}); point the URL at the primary "
                                  "(with several hosts: target_session_attrs=read-write)")
    return DatabaseError(f"PostgreSQL ({where}) failed: {first}", sqlstate=sqlstate)


@contextlib.contextmanager
def translated(url: PgUrl | None, *, connecting: bool = False) -> Iterator[None]:
    """Raise psycopg's errors inside the block as gspauth's (:func:`translate`)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, url, connecting=connecting) from None
    except Exception as exc:
        if type(exc).__name__ in ("PoolTimeout", "PoolClosed", "TooManyRequests"):
            raise translate(exc, url) from None
        raise


# -- migrations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """A set of tables with its own schema version.

    :param name: the component's key in ``gspauth_schema`` (``"store"``, ``"ledger"``, ``"journal"``).
    :param migrations: ``migrations[i]`` are the statements taking version ``i`` to ``i + 1``
        (so the first creates the tables); SQL names tables as ``{schema}.table``. Never edit a
        released migration: append a new one.
    :param what: what the component is, for messages.
    """

    name: str
    migrations: tuple[tuple[str, ...], ...]
    what: str = ""

    @property
    def version(self) -> int:
        """The version this gspauth writes."""
        return len(self.migrations)


_REGISTRY = (
    "CREATE TABLE IF NOT EXISTS {schema}.gspauth_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL, "
    "gspauth_version TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


# -- the database ---------------------------------------------------------------------------------

# Pools and connections a forked child inherited: never used, never closed (closing would
# end the parent's sessions on the server), kept referenced so no finaliser runs in the child.
_INHERITED: list[object] = []


def _close_pool_in(pool: psycopg_pool.ConnectionPool[Any], pid: int) -> None:
    if os.getpid() == pid:
        with contextlib.suppress(Exception):  # the interpreter may be shutting down
            pool.close(timeout=1.0)
    else:
        _INHERITED.append(pool)


class Database:
    """One PostgreSQL database and schema, as a component of gspauth uses it.

    :param url: a ``postgresql://`` URL or a parsed :class:`PgUrl`.
    :param what: what uses it, for the pool's name and messages (``"session store"``).
    """

    def __init__(self, url: str | PgUrl, *, what: str = "database") -> None:
        try:
            import psycopg  # noqa: F401 - fail here with a hint, not on first use
            import psycopg_pool  # noqa: F401 - only probing that the pool extra is installed
        except ImportError as exc:
            raise ConfigurationError(f"PostgreSQL support needs psycopg and psycopg-pool ({exc.name} is missing); "
                                     "`pip install 'gspauth[postgres]'`") from None
        self.url = url if isinstance(url, PgUrl) else parse_url(url)
        self.what = what
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._pid = os.getpid()
        self._guard = threading.Lock()
        self.quoted_schema = f'"{self.url.schema}"'

    @property
    def schema(self) -> str:
        return self.url.schema

    def __repr__(self) -> str:
        return f"Database({self.url.display!r}, schema={self.schema!r})"

    def sql(self, text: str) -> str:
        """``text`` with ``{schema}`` replaced by the quoted schema name."""
        return text.replace("{schema}", self.quoted_schema)

    def lock_key(self, *parts: str) -> int:
        """A signed 64-bit advisory-lock key for ``parts``, private to this schema."""
        digest = hashlib.sha256("\x00".join(("gspauth", self.schema, *parts)).encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    # -- connections ----------------------------------------------------------------------------

    def _kwargs(self) -> dict[str, Any]:
        from psycopg.conninfo import conninfo_to_dict

        kwargs: dict[str, Any] = {}
        with translated(self.url, connecting=True):
            given = conninfo_to_dict(self.url.conninfo)
        if "application_name" not in given and not os.environ.get("PGAPPNAME"):
            kwargs["application_name"] = f"gspauth {self.what}"[:63]  # pg_stat_activity tells who is who
        return kwargs

    def connect(self, *, autocommit: bool = True) -> Connection:
        """A new dedicated connection (the caller closes it). Errors are gspauth's."""
        import psycopg

        with translated(self.url, connecting=True):
            return psycopg.connect(self.url.conninfo, autocommit=autocommit, **self._kwargs())

    def pool(self) -> psycopg_pool.ConnectionPool[Any]:
        """This process's pool (created on first use, and again in a forked child)."""
        with self._guard:
            if self._pool is not None and self._pid == os.getpid():
                return self._pool
            if self._pool is not None:  # inherited through fork: leave it alone
                _INHERITED.append(self._pool)
            from psycopg_pool import ConnectionPool

            # A pool retries failed connections in the background until its timeout and then
            # says only "timed out": one direct connection first turns a wrong password, a
            # missing database or a server that is down into its own clear error at once.
            self.connect().close()
            self._pid = os.getpid()
            pool: ConnectionPool[Any] = ConnectionPool(
                self.url.conninfo, kwargs=self._kwargs(), min_size=0, max_size=self.url.pool_max, open=True,
                check=ConnectionPool.check_connection, name=f"gspauth-{self.what.replace(' ', '-')}",
                timeout=self.url.pool_timeout, max_idle=300.0, num_workers=1,
            )  # fmt: skip
            weakref.finalize(self, _close_pool_in, pool, self._pid)
            self._pool = pool
            return pool

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A pooled connection inside ``BEGIN`` … ``COMMIT`` (rolled back if the block raises)."""
        pool = self.pool()
        try:
            with translated(self.url), pool.connection() as conn, conn.transaction():
                yield conn
        except Unreachable:
            # The pool gave up waiting: say why if a direct connection can (server down,
            # password changed …); otherwise every pooled connection really was busy.
            self.connect().close()
            raise

    def read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (``{schema}`` substituted), in its own short transaction."""
        with self.transaction() as conn:
            return conn.execute(self.sql(sql), params).fetchall()

    def close(self) -> None:
        """Close this process's pool (a new one is made if the object is used again)."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            _close_pool_in(pool, self._pid)

    # -- migrations ---------------------------------------------------------------------------

    def versions(self) -> dict[str, int]:
        """Every component's version in this schema (empty: nothing installed)."""
        with self.transaction() as conn:
            if conn.execute("SELECT to_regclass(%s)", (self.sql("{schema}.gspauth_schema"),)).fetchone() == (None,):
                return {}
            rows = conn.execute(self.sql("SELECT component, version FROM {schema}.gspauth_schema")).fetchall()
        return {str(name): int(version) for name, version in rows}

    def _refuse_newer(self, component: Component, found: int) -> None:
        if found > component.version:
            raise ConfigurationError(
                f"the {component.what or component.name} in {self.url.display} (schema {self.schema}) is at "
                f"version {found}, newer than this gspauth understands ({component.version}); upgrade gspauth "
                "(every process sharing the database must run a release that knows the new schema)")

    def ensure(self, component: Component, *, migrate: MigrateMode | None = None) -> int:
        """Make sure the schema has ``component`` at its version; returns the version.

        :param migrate: ``auto`` migrates an older schema (default: the URL's setting);
            ``never`` refuses it.
        :raises ConfigurationError: too new ("upgrade gspauth"), or too old / absent with
            migration off ("gspauth db migrate URL").
        """
        mode = migrate or self.url.migrate
        if mode not in ("auto", "never"):
            raise ConfigurationError(f"migrate={mode!r}: use auto or never")
        found = self.versions().get(component.name, 0)
        self._refuse_newer(component, found)
        if found == component.version:
            return found
        if mode == "never":
            state = "is not installed" if found == 0 else f"is at version {found}"
            raise ConfigurationError(
                f"the {component.what or component.name} in {self.url.display} (schema {self.schema}) {state}, this "
                f"gspauth needs version {component.version}, and automatic migration is off; run "
                f"`gspauth db migrate URL` (as a role that may create tables in the schema), then start again")
        return self.migrate(component)[1]

    def migrate(self, component: Component) -> tuple[int, int]:
        """Apply ``component``'s missing migrations in one transaction; ``(before, after)``.

        Serialised by an advisory lock, so processes starting together migrate once: the
        others wait, then find the work done.
        """
        from gspauth import __version__

        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key("migrate"),))
            conn.execute(self.sql("CREATE SCHEMA IF NOT EXISTS {schema}"))
            conn.execute(self.sql(_REGISTRY))
            row = conn.execute(self.sql("SELECT version FROM {schema}.gspauth_schema WHERE component = %s"),
                               (component.name,)).fetchone()
            before = int(row[0]) if row else 0
            self._refuse_newer(component, before)
            for number in range(before, component.version):
                for statement in component.migrations[number]:
                    conn.execute(self.sql(statement))
            if before != component.version:
                conn.execute(self.sql(
                    "INSERT INTO {schema}.gspauth_schema (component, version, gspauth_version) VALUES (%s, %s, %s) "
                    "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, "
                    "gspauth_version = EXCLUDED.gspauth_version, updated_at = now()"),
                    (component.name, component.version, __version__))
                log.info("%s: %s migrated from version %d to %d", self.url.display, component.name, before,
                         component.version)
        return before, component.version


# -- advisory locks -------------------------------------------------------------------------------


class AdvisoryLock:
    """A session-level advisory lock held on a dedicated connection.

    The lock lives exactly as long as the connection's server session: released by
    :meth:`release`, and by the server when the connection dies (the process was killed, the
    network dropped, ``pg_terminate_backend``). A holder that must not act after losing it
    fences its writes (the session store's fence tokens).

    :param conn: a connection of its own, in autocommit mode (the lock is tied to it).
    :param key: from :meth:`Database.lock_key`.
    """

    def __init__(self, conn: Connection, key: int) -> None:
        self.conn = conn
        self.key = key
        self.held = False

    def acquire(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: for ever, ``0``: not at all); ``False`` on timeout.

        The wait is the server's (``lock_timeout``), not a polling loop.
        """
        from psycopg import errors as pge

        if timeout is not None and timeout < 0.001:
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            self.held = bool(row and row[0])
            return self.held
        millis = 0 if timeout is None else max(1, int(timeout * 1000))
        self.conn.execute(f"SET lock_timeout = {millis}")
        try:
            self.conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))
        except pge.LockNotAvailable:
            return False
        finally:
            with contextlib.suppress(Exception):  # a dead connection is reported by the caller's next use
                self.conn.execute("SET lock_timeout = 0")
        self.held = True
        return True

    def release(self) -> bool:
        """Give the lock back; ``False`` if the connection (and so the lock) was already gone."""
        import psycopg

        if not self.held:
            return True
        self.held = False
        try:
            row = self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,)).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])
