"""The README stays true: every setting is documented, and the two commands are there."""

from __future__ import annotations

import re
from pathlib import Path

from sextant.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"`(SEXTANT_[A-Z0-9_]+)`", README))
    missing = {f"SEXTANT_{name.upper()}" for name in Settings.model_fields} - documented
    assert not missing, f"settings missing from README's configuration table: {sorted(missing)}"


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    known = {f"SEXTANT_{name.upper()}" for name in Settings.model_fields}
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(SEXTANT_[A-Z0-9_]+)`", table))
    assert documented <= known, sorted(documented - known)


def test_the_two_commands() -> None:
    assert "make run" in README
    assert "make test" in README
