"""The README and docs/ stay true to the code: the hyperparameter tables are generated from the
schema, the README is a front page that shows the two set-up commands, and every relative link
leads to a page (and heading) that exists. The snippets are run by
tests/integration/test_doc_snippets.py and test_doc_bash_snippets.py. Tier: fast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sagemaker_cv.contract import environment
from sagemaker_cv.tools.docs import render_environment, render_tables

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_hyperparameter_tables_match_the_schema():
    text = (REPO / "docs" / "hyperparameters.md").read_text()
    assert render_tables(text) == text, "docs/hyperparameters.md tables are stale: run `make docs`"


def test_the_environment_table_is_generated_and_lists_every_variable_the_code_reads():
    text = (REPO / "docs" / "usage.md").read_text()
    assert render_environment(text) == text, "docs/usage.md's environment table is stale: run `make docs`"
    read = set()
    for path in (REPO / "src" / "sagemaker_cv").rglob("*.py"):
        read |= set(re.findall(r"[\"'](SAGEMAKER_[A-Z_]+|MXNET_HOME)[\"']", path.read_text()))
    assert read == environment.NAMES


def test_the_readme_is_a_front_page_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert len(text.splitlines()) <= 200


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+ (.*)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_leads_somewhere(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: no heading for {target}"


@pytest.mark.parametrize("page", ["README.md", "docs/onnx.md"])
def test_the_onnx_tolerance_tables_say_what_the_parity_check_allows(page):
    from sagemaker_cv.tools.onnx_export.parity import TOLERANCES

    rows = {
        cells[0]: cells[2]
        for line in (REPO / page).read_text().splitlines()
        if line.startswith("| ")
        and len(cells := [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]) == 4
    }
    assert float(rows["image-classification"]) == TOLERANCES["probability"]
    assert float(rows["object-detection"].split()[0]) == TOLERANCES["score"] == TOLERANCES["box"]
    assert float(rows["semantic-segmentation"].split()[-1]) == TOLERANCES["agreement"]
