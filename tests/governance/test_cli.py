"""`sextant export` and `sextant retention` in a process of their own (own chDB directory)."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sextant", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_demo_then_export_csv_and_retention(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SEXTANT_DATABASE_URL": f"sqlite:///{tmp_path / 'control.db'}",
        "SEXTANT_EVENTS_URL": f"chdb://{tmp_path / 'events'}",
        "SEXTANT_ENVIRONMENT": "development",
        "COLUMNS": "200",
    }
    assert run(["migrate"], env).returncode == 0
    demo = run(["demo", "--events", "3000", "--days", "10"], env)
    assert demo.returncode == 0, demo.stderr
    project = re.search(r"project:\s+([0-9a-f-]{36})", demo.stdout)
    assert project, demo.stdout

    out = tmp_path / "events.csv"
    exported = run(
        ["export", "--project", project[1], "--format", "csv", "--output", str(out)], env
    )
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) >= 3000  # the demo may add identify events on top
    assert {"event", "timestamp", "distinct_id", "tx_value"} <= set(rows[0])

    missing = run(["export", "--project", "00000000-0000-0000-0000-000000000000"], env)
    assert missing.returncode == 1
    assert "no project" in missing.stderr

    assert run(["retention"], env).returncode == 0  # 10 days of data, 365-day retention
    again = run(["export", "--project", project[1], "--format", "csv", "-o", str(out)], env)
    assert again.returncode == 0
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == len(rows)
