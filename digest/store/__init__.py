"""The subscriber and delivery store: SQLAlchemy Core on SQLite (default) or PostgreSQL.

SQL lives in this package only; callers use the named queries in `subscribers`,
`deliveries` and `workers`. The schema is versioned with Alembic and upgraded on open.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError, SQLAlchemyError

from digest.errors import StoreError
from digest.store.statuses import DeliveryStatus, SubscriberStatus

if TYPE_CHECKING:
    from digest.config import Config

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another's lock before "database is locked"


class Store:
    """One engine per process; every write is its own short transaction."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
        self.dialect = self.engine.dialect.name
        self.round_trips = 0  # statements, BEGINs and COMMITs sent to the server: the benchmark's figure
        event.listen(self.engine, "before_cursor_execute", self._count)
        event.listen(self.engine, "commit", self._count)
        if self.dialect != "sqlite":
            event.listen(self.engine, "begin", self._count)

    def _count(self, *args: object, **kwargs: object) -> None:
        self.round_trips += 1

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite: writers queue instead of deadlocking)."""
        with self._errors(), self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StoreError(f"database {self.where}: {_reason(exc)}") from exc
        except SQLAlchemyError as exc:
            if isinstance(exc.__cause__, StoreError):
                raise exc.__cause__ from None
            if type(exc) is DatabaseError:  # SQLite's "not a database", "disk image is malformed"
                raise StoreError(f"database {self.where}: {_reason(exc)}") from exc
            raise  # IntegrityError and the like: callers handle them

    @property
    def where(self) -> str:
        """The database for an error message: a SQLite file's path, else the URL without its password."""
        database = self.engine.url.database
        if self.dialect == "sqlite" and database and database != ":memory:":
            return database
        return self.safe_url

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


def insert_or(store: Store, table: Table) -> Any:
    """INSERT for the store's dialect, with `on_conflict_do_nothing` / `on_conflict_do_update`
    (SQLite and PostgreSQL spell them alike): concurrent senders race on unique keys, and
    check-then-insert loses that race on PostgreSQL."""
    if store.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def _reason(exc: DatabaseError) -> str:
    message = (str(exc.orig).strip().splitlines() or [""])[0] if exc.orig else str(exc)
    if "locked" in message:
        return f"{message} (another digest process holds a write lock; try again, or raise busy timeouts)"
    if "not a database" in message or "malformed" in message:
        return (
            f"{message} (the file is damaged or is not a SQLite database: restore it from a backup, "
            "or move it aside and digest starts an empty one)"
        )
    return message


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=16,
            max_overflow=16,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgresql+psycopg://"):
        _require_psycopg()
    return create_engine(url, pool_size=16, max_overflow=16, pool_pre_ping=True)


def _require_psycopg() -> None:
    """`pip install .` leaves the PostgreSQL driver out: say which command brings it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StoreError(
            'a postgresql:// database needs the psycopg driver, which is not installed: pip install ".[postgres]"'
        ) from None


def _sqlite_connect(dbapi_conn: object, _record: object) -> None:
    dbapi_conn.isolation_level = None  # type: ignore[attr-defined]  # SQLAlchemy's begin hook decides
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: the statements below may meet a lock
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer (set once per file)
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash, fsync at checkpoints
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_store(config: Config) -> Store:
    """The site's database ([store] url, or DIGEST_DATABASE_URL), its schema brought up to date (created on
    first use). Whoever opens it closes it."""
    url = config.database_url
    try:
        store = Store(url)
    except StoreError:
        raise
    except (ArgumentError, NoSuchModuleError, ValueError):
        # the message would repeat the URL, and with it any password
        raise StoreError(
            "the database URL ([store] url or DIGEST_DATABASE_URL) is not one digest can use: "
            "write sqlite:///path/to/file.sqlite or postgresql://user@host/database"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"database {url.split(':///', 1)[-1]}: can't create its folder: {exc.strerror or exc}"
        ) from None
    try:
        upgrade(store)
    except DatabaseError as exc:
        store.close()
        raise StoreError(f"database {store.where}: {_reason(exc)}") from None
    except OSError as exc:  # the migration lock file beside a SQLite database
        store.close()
        raise StoreError(f"database {store.where}: {exc.strerror or exc} ({exc.filename or 'its folder'})") from None
    return store


def head_revision() -> str:
    versions = sorted(p.stem.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))
    return versions[-1]


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(store: Store) -> None:
    """Run pending migrations, one process at a time; a no-op (one query) when up to date."""
    if current_revision(store) == head_revision():
        return
    with _migration_lock(store):
        if current_revision(store) == head_revision():
            return
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        log.info("database schema upgraded to %s", head_revision())


@contextlib.contextmanager
def _migration_lock(store: Store) -> Iterator[None]:
    """A file lock beside a SQLite database, an advisory lock on PostgreSQL."""
    if store.dialect == "sqlite":
        database = store.engine.url.database
        path = Path(database + ".migrate.lock") if database and database != ":memory:" else None
        if path is None:
            yield
            return
        with open(path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        return
    with store.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(4242001)"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(4242001)"))
            conn.commit()


__all__ = ["Store", "open_store", "StoreError", "SubscriberStatus", "DeliveryStatus"]
