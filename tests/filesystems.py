"""A small filesystem made by a test (a size-limited tmpfs), to run the store into a full disk.

Mounting needs root (or CAP_SYS_ADMIN); where the machine cannot mount one, the test is
skipped with the reason. The mount can be grown (`grow`) and made read-only (`read_only`)
while a server writes to it, as an operator would.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest


class SmallFilesystem:
    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb

    def _mount(self, options: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,{options}", str(self.path)],
            check=True,
            capture_output=True,
        )

    def grow(self, size_mb: int) -> None:
        """Give the filesystem more room (what an operator does when the disk is full)."""
        self._mount(f"size={size_mb}m")
        self.size_mb = size_mb

    @contextmanager
    def read_only(self, directory: Path) -> Iterator[None]:
        """Make `directory` (inside this filesystem) read-only for a while: a read-only bind
        mount over it. The whole filesystem cannot be remounted read-only while a server
        holds files open for writing (its lock file), so this is how a store that suddenly
        cannot write its parts is made."""
        subprocess.run(
            ["mount", "--bind", str(directory), str(directory)], check=True, capture_output=True
        )
        try:
            subprocess.run(
                ["mount", "-o", "remount,bind,ro", str(directory)], check=True, capture_output=True
            )
            yield
        finally:
            subprocess.run(["umount", "-l", str(directory)], check=True, capture_output=True)

    def free_bytes(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize


@contextmanager
def small_filesystem(size_mb: int, *, read_only: bool = False) -> Iterator[SmallFilesystem]:
    """A tmpfs of `size_mb` MB (read-only from the start with `read_only`), unmounted
    afterwards."""
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command on this machine: cannot make a small filesystem")
    path = Path(tempfile.gettempdir()) / f"sextant-small-fs-{secrets.token_hex(4)}"
    path.mkdir()
    mounted = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size_mb}m,mode=0755" + (",ro" if read_only else ""),
            "tmpfs",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(
            "this machine cannot mount a size-limited tmpfs for the full-disk test "
            f"(needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}"
        )
    try:
        yield SmallFilesystem(path, size_mb)
    finally:
        with suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)
        with suppress(OSError):
            path.rmdir()
