"""The test tiers (tests/tiers.py) and fixtures shared by the unit and integration tests.

`pytest --tier T` (repeatable) runs the tests of tier T wherever they live; `--tier-report FILE`
writes every collected test's tier (the partition check in tests/unit/test_tiers.py reads it).
A collected test that is itself `@given` is refused: property tests are tier twins (tests/tiers.py
TWINS), a tenth of the examples in the fast tier and the full count in the slow one.
Every run prints the 25 slowest tests (`--durations=25` in pyproject.toml).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sagemaker_cv.tools import pipefeed
from tiers import TIERS, TierError, refuse_untiered_property_test, tier_of

TESTS = Path(__file__).parent


def pytest_addoption(parser):
    parser.addoption(
        "--tier", action="append", choices=TIERS, default=[], help="run only this tier's tests (repeatable)"
    )
    parser.addoption("--tier-report", metavar="FILE", help="write {test id: tier} of every collected test")


def pytest_configure(config):
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: in the {tier} test tier (tests/tiers.py)")


@pytest.hookimpl(tryfirst=True)  # before -m and -k deselect: the report lists every test
def pytest_collection_modifyitems(config, items):
    tiers, problems = {}, []
    for item in items:
        folder = Path(item.path).relative_to(TESTS).parts[0]
        try:
            tiers[item.nodeid] = tier_of(folder, {m.name for m in item.iter_markers()})
            refuse_untiered_property_test(getattr(item, "obj", None))
        except TierError as exc:
            problems.append(f"{item.nodeid}: {exc}")
    if problems:
        raise pytest.UsageError("tests without exactly one tier:\n" + "\n".join(problems))
    if config.getoption("tier_report"):
        Path(config.getoption("tier_report")).write_text(json.dumps(tiers, indent=0))
    chosen = config.getoption("--tier")
    if chosen:
        keep = [item for item in items if tiers[item.nodeid] in chosen]
        dropped = [item for item in items if tiers[item.nodeid] not in chosen]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def feeders():
    """Start Pipe-mode feeder processes (`pipefeed.start(root, channel, epochs, *args)`); any still
    running when the test ends (it failed before reading every FIFO) is ended."""
    started: list[subprocess.Popen] = []

    def start(*args, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stderr", subprocess.PIPE)
        started.append(pipefeed.start(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
