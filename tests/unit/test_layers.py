"""The import structure cannot decay: the layers and the framework-free modules declared in
pyproject.toml ([tool.importlinter], docs/design.md) hold, with no exception list. Tier: fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept():
    linter = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(linter)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "2 kept" in proc.stdout


def test_nothing_below_the_algorithms_imports_the_registry():
    """The entry points resolve an algorithm once and hand its record down."""
    below = ("contract", "schema", "training", "inputs", "distributed")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for package in below
        for path in (REPO / "src" / "sagemaker_cv" / package).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if ("from sagemaker_cv import algorithms" in line or "sagemaker_cv.algorithms" in line)
        and "algorithms.record import Algorithm" not in line
    ]
    assert found == []
