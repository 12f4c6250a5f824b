"""A throwaway Sextant server in a subprocess, for integration tests of SDKs and the dashboard.

    with SextantServer(tmp_path) as server:
        account = server.bootstrap()          # user, org, project, write + read keys
        Client(account.write_key, server.url).track("signup", user_id="u1")

The server gets its own SQLite file and chDB directory under `data_dir` (chDB allows one
engine per process, so a test process that already has one cannot host a second).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson


def query_store(events_url: str, sql: str, **params: Any) -> list[list[Any]]:
    """Run one query on a stopped server's chDB directory, in a subprocess (a process that
    already has an engine open cannot open a second directory)."""
    script = textwrap.dedent(
        """
        import sys, orjson
        from sextant.core.eventstore import open_event_store
        url, sql, params = sys.argv[1], sys.argv[2], orjson.loads(sys.argv[3])
        rows = open_event_store(url).query(sql, params).rows
        sys.stdout.buffer.write(orjson.dumps([list(r) for r in rows], default=str))
        """
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed script
        [sys.executable, "-c", script, events_url, sql, orjson.dumps(params).decode()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode()[-2000:])
    return list(orjson.loads(result.stdout))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Account:
    """What `SextantServer.bootstrap` created."""

    email: str
    password: str
    access_token: str
    org_id: str
    project_id: str
    write_key: str
    read_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class SextantServer:
    """`sextant migrate` + `sextant serve` on a free port, stopped on exit."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SEXTANT_ENVIRONMENT": "test",
            "SEXTANT_SECRET_KEY": secrets.token_urlsafe(48),
            "SEXTANT_DATABASE_URL": f"sqlite:///{self.data_dir / 'sextant.db'}",
            "SEXTANT_EVENTS_URL": f"chdb://{self.data_dir / 'events'}",
            "SEXTANT_LOG_LEVEL": "WARNING",
            "SEXTANT_INGEST_FLUSH_INTERVAL_MS": "20",
            # A throwaway server keeps less free than the default 256 MB: test machines'
            # disks are small, and the guard is not what such tests look at.
            "SEXTANT_INGEST_MIN_FREE_DISK_MB": "16",
            **{f"SEXTANT_{key.upper()}": value for key, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"

    def start(self, timeout: float = 90.0) -> SextantServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cli = [sys.executable, "-m", "sextant"]
        subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [*cli, "migrate"], env=self.env, check=True, capture_output=True, timeout=timeout
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sextant exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sextant did not start in {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> SextantServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def bootstrap(self, *, timezone: str = "UTC") -> Account:
        """Register a user and create an organisation, a project and a write and a read key."""
        email = f"owner-{secrets.token_hex(4)}@example.com"
        password = "correct-horse-" + secrets.token_hex(4)
        with httpx.Client(base_url=self.url, timeout=30.0) as http:

            def call(method: str, path: str, token: str | None = None, **kw: Any) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = http.request(method, path, headers=headers, **kw)
                if response.status_code >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
                return response.json()

            call(
                "POST",
                "/api/v1/auth/register",
                json={"email": email, "password": password, "name": "Owner"},
            )
            token = call("POST", "/api/v1/auth/login", json={"email": email, "password": password})[
                "access_token"
            ]
            org = call("POST", "/api/v1/orgs", token, json={"name": "Test org"})
            project = call(
                "POST",
                "/api/v1/projects",
                token,
                json={"org_id": org["id"], "name": "Test project", "timezone": timezone},
            )
            keys = f"/api/v1/projects/{project['id']}/keys"
            write = call("POST", keys, token, json={"name": "write", "kind": "write"})
            read = call("POST", keys, token, json={"name": "read", "kind": "read"})
        return Account(
            email=email,
            password=password,
            access_token=token,
            org_id=org["id"],
            project_id=project["id"],
            write_key=write["secret"],
            read_key=read["secret"],
        )

    def wait_for_events(
        self,
        account: Account,
        *,
        expected: int,
        predicate: Callable[[dict[str, Any]], bool] = lambda event: True,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Read the project's activity feed (read key) until `expected` events match."""
        deadline = time.monotonic() + timeout
        events: list[dict[str, Any]] = []
        while True:
            response = httpx.post(
                f"{self.url}/api/v1/projects/{account.project_id}/query",
                headers={"X-API-Key": account.read_key},
                params={"fresh": "true"},
                json={"kind": "events", "date_from": "all", "limit": 500},
                timeout=30.0,
            )
            if response.status_code != 200:
                raise RuntimeError(f"events query: {response.status_code} {response.text}")
            body = response.json()
            events = [event for event in body.get("results", []) if predicate(event)]
            if len(events) >= expected or time.monotonic() > deadline:
                return events
            time.sleep(0.2)
