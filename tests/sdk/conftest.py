"""A real Sextant server in a subprocess (its own SQLite file and chDB directory).

The pytest process already holds the session's chDB engine, so servers that the SDK
talks to over HTTP run as subprocesses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sextant.sdk.testing import Account, SextantServer


@pytest.fixture(scope="session")
def sextant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SextantServer]:
    with SextantServer(tmp_path_factory.mktemp("sdk-server")) as server:
        yield server


@pytest.fixture
def account(sextant_server: SextantServer) -> Account:
    """A fresh user, organisation and project (with write and read keys) on the server."""
    return sextant_server.bootstrap()
