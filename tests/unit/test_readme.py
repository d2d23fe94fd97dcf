"""The README's hyperparameter tables are generated from the schema and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from sagemaker_cv.tools.docs import render_tables

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_tables_match_the_schema():
    text = README.read_text()
    assert render_tables(text) == text, "README.md tables are stale: run `make readme`"


def test_readme_shows_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
