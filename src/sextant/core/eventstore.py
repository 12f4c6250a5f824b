"""The event store: a narrow typed client over clickhouse-connect.

`chdb:///path` runs the ClickHouse engine in-process (chDB); `http(s)://host:8123/db` talks
to a ClickHouse server. Same SQL, same results. Driver errors surface as `EventStoreError`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect

_process_lock = threading.Lock()
_open_stores: dict[str, EventStore] = {}


class EventStoreError(Exception):
    """The event store failed or refused a statement."""


class EventStoreLocked(EventStoreError):
    """Another process owns the embedded data directory."""


class QueryTooExpensive(EventStoreError):
    """The query hit its time or memory limit."""


class IncompleteInsert(EventStoreError):
    """The store did not confirm every row of an insert."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    elapsed_ms: float = 0.0

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


# ClickHouse error codes that mean "the query asked for too much", not "we broke".
_LIMIT_CODES = {"159", "241", "158", "396", "307"}  # timeout, memory, rows, result, bytes
_CLIENT_CODES = {"62", "47", "43", "386", "53", "6", "27", "38", "70", "36"}


_DDL = re.compile(r"\s*(ALTER|CREATE|DROP|RENAME|EXCHANGE)\b", re.IGNORECASE)


def _error_code(exc: Exception) -> str:
    text = str(exc)
    marker = "Code: "
    if marker in text:
        return text.split(marker, 1)[1].split(".", 1)[0].strip()
    return getattr(exc, "code", "") or ""


def _wrap(exc: Exception) -> EventStoreError:
    code = _error_code(exc)
    if code in _LIMIT_CODES:
        return QueryTooExpensive(str(exc).split("\n", 1)[0])
    return EventStoreError(str(exc).split("\n", 1)[0])


def _setting_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def chdb_path(url: str) -> Path:
    """The directory of a `chdb:///path` URL (relative paths are relative to the cwd)."""
    rest = url[len("chdb://") :]
    if rest.startswith("/./") or rest.startswith("/../"):
        rest = rest[1:]
    return Path(rest).expanduser().resolve()


class EventStore:
    """Insert rows and run queries against ClickHouse (server or in-process chDB)."""

    def __init__(self, url: str, *, query_settings: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.embedded = url.startswith("chdb:")
        self.query_settings = dict(query_settings or {})
        self._lock_fd: int | None = None
        # Extra connections by name ("writer", "rollups", "report-N"): a connection
        # serialises its calls, so the group commit, the rollup builder and a report's
        # concurrent statements each get their own and never wait behind another statement.
        self._named: dict[str, Any] = {}
        self._named_lock = threading.Lock()
        # Finished writes (inserts and statements), counted: see `unchanged_since`.
        self._writes = 0
        self._writes_lock = threading.Lock()
        # A raw chDB handle on the same engine for Arrow inserts (the ingest writer's).
        self._chdb_handle: Any = None
        self._types: dict[str, dict[str, str]] = {}
        if self.embedded:
            path = chdb_path(url)
            path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = self._acquire_dir_lock(path)
            self.database = "default"
            self._connect_args: dict[str, Any] = {"dsn": f"chdb://{path}"}
            try:
                self._client = clickhouse_connect.get_client(**self._connect_args)
            except Exception as exc:
                self._release_dir_lock()
                raise EventStoreError(
                    f"cannot open the embedded event store at {path}: {exc}"
                ) from exc
        else:
            parsed = urlparse(url)
            self.database = (parsed.path or "/").strip("/") or "default"
            self._connect_args = {
                "interface": parsed.scheme,
                "host": parsed.hostname or "localhost",
                "port": parsed.port or (8443 if parsed.scheme == "https" else 8123),
                "username": parsed.username or "default",
                "password": parsed.password or "",
                "database": self.database,
                "autogenerate_session_id": False,
                "compress": False,
            }
            try:
                self._client = clickhouse_connect.get_client(**self._connect_args)
            except Exception as exc:
                raise EventStoreError(
                    f"cannot reach ClickHouse at {parsed.hostname}: {exc}"
                ) from exc

    @staticmethod
    def _acquire_dir_lock(path: Path) -> int:
        lock_path = path / ".sextant.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = ""
            with contextlib.suppress(OSError):
                owner = os.pread(fd, 64, 0).decode().strip()
            os.close(fd)
            who = f" (process {owner})" if owner else ""
            raise EventStoreLocked(
                f"the embedded event store at {path} is already open in another process{who}; "
                "an embedded data directory belongs to one process. Stop that process, point "
                "SEXTANT_EVENTS_URL at another directory, or use a ClickHouse server "
                "(SEXTANT_EVENTS_URL=http://host:8123/db) to run several processes."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def _release_dir_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- statements ---------------------------------------------------------------------

    @property
    def writes(self) -> int:
        """How many writes have finished so far: take it before reading something, and
        `unchanged_since` tells later whether that reading still holds."""
        return self._writes

    def unchanged_since(self, mark: int) -> bool:
        """Whether nothing has been written since `writes` was `mark`. Only an embedded
        store can tell: one process owns its directory, so every write goes through this
        object. A server is written by other processes too: False."""
        return self.embedded and mark == self._writes

    def _wrote(self) -> None:
        with self._writes_lock:
            self._writes += 1

    def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        connection: str | None = None,
    ) -> QueryResult:
        """Run a SELECT with bound parameters (`{name:Type}` placeholders).

        `connection` names a connection of its own (e.g. "rollups") instead of the shared
        one.
        """
        result = self._read("query", sql, parameters, settings, connection)
        elapsed = 0.0
        summary = getattr(result, "summary", None) or {}
        if "elapsed_ns" in summary:
            elapsed = float(summary["elapsed_ns"]) / 1e6
        return QueryResult(
            columns=tuple(result.column_names),
            rows=tuple(tuple(r) for r in result.result_rows),
            elapsed_ms=elapsed,
        )

    def query_arrow(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        connection: str | None = None,
    ) -> Any:
        """Run a SELECT and return its rows as a `pyarrow.Table` (columns, not row tuples:
        for reading many rows into arrays)."""
        return self._read("query_arrow", sql, parameters, settings, connection)

    def _read(
        self,
        method: str,
        sql: str,
        parameters: Mapping[str, Any] | None,
        settings: Mapping[str, Any] | None,
        connection: str | None,
    ) -> Any:
        """Call a client's read method (`query`, `query_arrow`) on the named connection (or
        the shared one) with the store's settings under the statement's."""
        merged = {**self.query_settings, **(settings or {})}
        client = self._connection(connection) if connection else self._client
        try:
            return getattr(client, method)(sql, parameters=dict(parameters or {}), settings=merged)
        except Exception as exc:  # ClickHouseError, or chDB's RuntimeError for engine errors
            raise _wrap(exc) from exc

    def command(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        connection: str | None = None,
    ) -> Any:
        """Run DDL or another statement that returns no rows."""
        if _DDL.match(sql):
            self._types.clear()  # a column may have changed: read the types again
        client = self._connection(connection) if connection else self._client
        try:
            return client.command(
                sql, parameters=dict(parameters or {}), settings=dict(settings or {})
            )
        except Exception as exc:
            raise _wrap(exc) from exc
        finally:
            self._wrote()

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert rows (each a sequence in `column_names` order) in one block."""
        if not rows:
            return
        try:
            self._client.insert(
                table, rows, column_names=list(column_names), settings=dict(settings or {})
            )
        except Exception as exc:
            raise _wrap(exc) from exc
        finally:
            self._wrote()

    def _connection(self, name: str) -> Any:
        with self._named_lock:
            client = self._named.get(name)
            if client is None:
                try:
                    client = clickhouse_connect.get_client(**self._connect_args)
                except Exception as exc:
                    raise _wrap(exc) from exc
                self._named[name] = client
            return client

    def _writer(self) -> Any:
        # The ingest writer gets a connection of its own: a client serialises its calls, and
        # a long analytics query must not hold up the group commit behind it.
        return self._connection("writer")

    def insert_raw(
        self,
        table: str,
        data: bytes,
        *,
        fmt: str = "JSONEachRow",
        column_names: Sequence[str] | None = None,
        settings: Mapping[str, Any] | None = None,
        writer: bool = False,
    ) -> None:
        """Insert pre-encoded rows (e.g. JSONEachRow bytes) in one block.

        `writer=True` uses the ingest writer's own connection.
        """
        if not data:
            return
        client = self._writer() if writer else self._client
        try:
            client.raw_insert(
                table,
                column_names=list(column_names) if column_names else None,
                insert_block=data,
                settings=dict(settings or {}),
                fmt=fmt,
            )
        except Exception as exc:
            raise _wrap(exc) from exc
        finally:
            self._wrote()

    def flush_buffers(self) -> None:
        """Write what the database's Buffer tables hold to their tables: Buffer rows live in
        the process's memory, and an embedded store that closes (or a server process that
        stops) would lose them."""
        names = self.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine = 'Buffer'"
        ).rows
        for (name,) in names:
            self.command(f"OPTIMIZE TABLE `{str(name).replace('`', '')}`")

    def insert_arrow(
        self,
        table: str,
        data: Any,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert a pyarrow Table in one block, on the ingest writer's own connection, and
        return the rows the store says it wrote; raise unless it wrote all of them.

        Only the table's columns are written; the others take their defaults. Embedded, the
        engine reads the Arrow table in place (`INSERT ... SELECT ... FROM Python(...)`, a
        plain SQL insert on a handle of its own); on a server it is clickhouse-connect's
        `insert_arrow`, whose summary carries the written rows. chDB's streaming insert
        (`send_insert`) is not used: it returns normally, with every row counted as written,
        when the engine failed to write the part (a full disk), and the rows are lost.
        """
        if data.num_rows == 0:
            return 0
        try:
            if self.embedded:
                written = self._insert_arrow_embedded(table, data, settings or {})
            else:
                summary = self._writer().insert_arrow(table, data, settings=dict(settings or {}))
                written = int(getattr(summary, "written_rows", 0) or 0)
        except Exception as exc:
            raise _wrap(exc) from exc
        finally:
            self._wrote()
        # Views the table feeds count too (their rows are written by the same insert), so
        # a complete insert writes at least the rows sent.
        if written < data.num_rows:
            raise IncompleteInsert(
                f"the event store confirmed {written} of {data.num_rows} rows written to "
                f"{table}; the block is not acknowledged"
            )
        return written

    def _insert_arrow_embedded(self, table: str, data: Any, settings: Mapping[str, Any]) -> int:
        types = self._column_types(table)
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        # Each value cast to its column's type explicitly: a plain INSERT ... SELECT from
        # the table function converts leniently (a malformed UUID or number becomes zero),
        # where CAST refuses the block as the streaming formats do.
        casts = ", ".join(
            f"CAST(`{name}`, {_setting_literal(types[name])})" for name in data.column_names
        )
        clause = ", ".join(f"{key} = {_setting_literal(value)}" for key, value in settings.items())
        # `Python(name)` reads the Arrow table bound to that name in the calling frame.
        sextant_insert_block = data  # noqa: F841 - read by name by the engine
        statement = (
            f"INSERT INTO {table} ({columns}) SELECT {casts} FROM Python(sextant_insert_block)"
            + (f" SETTINGS {clause}" if clause else "")
        )
        with self._named_lock:
            handle = self._chdb_handle
            if handle is None:
                import chdb

                handle = chdb.connect(str(chdb_path(self.url)))  # type: ignore[no-untyped-call]
                self._chdb_handle = handle
                # Closed before the interpreter tears down: a chDB handle destroyed during
                # finalisation aborts the process (a libc++ assertion in the engine).
                atexit.register(self._close_chdb_handle)
        result = handle.query(statement)
        return int(result.rows_written())

    def _column_types(self, table: str) -> dict[str, str]:
        """The table's column types (read once: the schema changes only at start-up)."""
        types = self._types.get(table)
        if types is None:
            rows = self.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                "AND table = {t:String}",
                {"t": table},
            ).rows
            types = {str(name): str(kind) for name, kind in rows}
            self._types[table] = types
        return types

    def _close_chdb_handle(self) -> None:
        with self._named_lock:
            handle, self._chdb_handle = self._chdb_handle, None
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()

    def ping(self) -> bool:
        try:
            return bool(self.query("SELECT 1").scalar() == 1)
        except EventStoreError:
            return False

    def close(self) -> None:
        if self.embedded:
            with contextlib.suppress(EventStoreError):
                self.flush_buffers()
        try:
            with self._named_lock:
                named, self._named = self._named, {}
            for client in named.values():
                with contextlib.suppress(Exception):
                    client.close()
            self._close_chdb_handle()
            self._client.close()
        finally:
            self._release_dir_lock()


def open_event_store(url: str, *, query_settings: Mapping[str, Any] | None = None) -> EventStore:
    """One store per URL per process: chDB allows one engine per process."""
    with _process_lock:
        store = _open_stores.get(url)
        if store is None:
            store = EventStore(url, query_settings=query_settings)
            _open_stores[url] = store
        return store


def close_event_store(url: str) -> None:
    with _process_lock:
        store = _open_stores.pop(url, None)
    if store is not None:
        store.close()
