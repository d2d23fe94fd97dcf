"""The test tiers are a partition: every collected test is in exactly one tier, each tier's run
selects exactly its tests, and `make test-all` runs every tier over the whole of tests/.
Tier: fast (one collection of the whole suite in a subprocess, ~10 s)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiers import TIERS, TWINS, TierError, examples, refuse_untiered_property_test, tier_of

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


@pytest.mark.parametrize(
    ("folder", "marks", "tier"),
    [
        ("unit", set(), "fast"),
        ("unit", {"slow"}, "slow"),
        ("integration", set(), "slow"),
        ("integration", {"fast", "parametrize"}, "fast"),
        ("integration", {"cluster"}, "cluster"),
        ("weights", set(), "weights"),
        ("container", {"gpu_image"}, "container"),
    ],
)
def test_where_a_test_lives_and_its_marker_decide_its_tier(folder, marks, tier):
    assert tier_of(folder, marks) == tier


@pytest.mark.parametrize(
    ("folder", "marks", "words"),
    [
        ("integration", {"fast", "cluster"}, "marked cluster and fast"),
        ("container", {"slow"}, "every test there is in the container tier"),
        ("bench", set(), "not a test folder"),
    ],
)
def test_a_test_in_two_tiers_or_none_is_refused(folder, marks, words):
    with pytest.raises(TierError, match=words):
        tier_of(folder, marks)


def test_example_counts_are_small_in_the_fast_tier_only():
    assert examples(400, "fast") == 40 and examples(400, "slow") == 400
    assert examples(30, "fast") == 10  # never fewer than 10


@pytest.mark.parametrize("folder", ["unit", "integration"])
def test_property_twins_split_into_fast_and_slow_wherever_they_live(folder):
    twins = [tier_of(folder, {m.name for m in twin.marks}) for twin in TWINS]
    assert twins == [twin.values[0] for twin in TWINS] == ["fast", "slow"]


def test_a_property_test_outside_the_twins_is_refused():
    @given(st.integers())
    def bare(n):
        pass

    with pytest.raises(TierError, match="TWINS"):
        refuse_untiered_property_test(bare)
    refuse_untiered_property_test(test_a_property_test_outside_the_twins_is_refused)  # a plain test


def test_every_collected_test_is_in_exactly_one_tier_and_each_tier_selects_its_own(tmp_path):
    report = tmp_path / "tiers.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--tier", "fast", "--tier-report", str(report), str(TESTS)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tiers = json.loads(report.read_text())
    assert set(tiers.values()) <= set(TIERS)
    assert len(tiers) > 500  # the whole suite was collected, not one folder
    selected = {line for line in proc.stdout.splitlines() if "::" in line}
    assert selected == {test for test, tier in tiers.items() if tier == "fast"}
    assert "tests/unit/test_tiers.py::test_example_counts_are_small_in_the_fast_tier_only" in selected
    # A property test in tests/unit runs its fraction here and its full count in the slow tier.
    twin = "tests/unit/test_schema_fuzz.py::test_parser_yields_values_or_client_error"
    assert (tiers[f"{twin}[fast]"], tiers[f"{twin}[slow]"]) == ("fast", "slow")
    # Each tier has tests in it (a marker spelled wrong would leave one empty).
    assert {tier for tier in tiers.values()} == set(TIERS)


def test_make_test_all_runs_every_tier_over_the_whole_suite():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^TIERS := (.*)$", makefile, re.M).group(1).split() == list(TIERS)
    # Each tier's target selects its tier over tests/, not over one folder.
    targets = makefile + (REPO / "docker" / "docker.mk").read_text()
    for tier in TIERS:
        assert re.search(rf"--tier (?:{tier}|\$\(@:test-%=%\)) tests\b", targets), tier
