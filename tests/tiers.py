"""The test tiers, by policy rather than by hand: where a test lives decides its tier unless a
marker says otherwise, so a new test cannot fall between two tiers.

| tier      | what                                                           | how a test gets there             |
| --------- | -------------------------------------------------------------- | --------------------------------- |
| fast      | `make test`: unit tests, and the integration tests marked fast | tests/unit/, or `@pytest.mark.fast` |
| slow      | learning tests, every network, fuzzing at full counts          | tests/integration/ (the default), or `@pytest.mark.slow` in tests/unit |
| cluster   | several hosts on loopback                                      | `@pytest.mark.cluster`            |
| weights   | weight conversions against timm/torchvision                    | tests/weights/                    |
| container | the image, built and run as SageMaker runs it                  | tests/container/                  |

`make test-all` runs them in this order, the one that fails fastest first; every tier runs over
the whole of tests/, so a test is in exactly one of them wherever it lives.
"""

from __future__ import annotations

import pytest
from hypothesis import is_hypothesis_test

TIERS = ("fast", "slow", "cluster", "weights", "container")
#: the markers that choose a tier (weights and container come from the folder)
MARKERS = {"fast", "slow", "cluster"}
FOLDERS = {"unit": "fast", "integration": "slow", "weights": "weights", "container": "container"}


class TierError(ValueError):
    pass


def tier_of(folder: str, marks: set[str]) -> str:
    """The tier of a test in tests/<folder> that carries the markers `marks`."""
    if folder not in FOLDERS:
        raise TierError(f"tests/{folder}: not a test folder (expected one of {', '.join(sorted(FOLDERS))})")
    chosen = marks & MARKERS
    if len(chosen) > 1:
        raise TierError(f"marked {' and '.join(sorted(chosen))}: a test is in exactly one tier")
    default = FOLDERS[folder]
    if default in ("weights", "container"):
        if chosen:
            raise TierError(
                f"marked {chosen.pop()} in tests/{folder}: every test there is in the {default} tier"
            )
        return default
    return chosen.pop() if chosen else default


#: Hypothesis example counts: a fraction in the fast tier; full counts in their slow twins
FAST_FRACTION = 0.1


def examples(full: int, tier: str) -> int:
    """The example count of a property test written for `full` examples, run in `tier`."""
    return max(10, round(full * FAST_FRACTION)) if tier == "fast" else full


#: Every property test is a pair of twins: parametrize it with these, and run its `@given` body
#: inside the test at `examples(full, tier)` examples. Both twins carry their marker, so the pair
#: splits the same way in tests/unit (fast by default) and tests/integration (slow by default).
TWINS = [pytest.param("fast", marks=pytest.mark.fast), pytest.param("slow", marks=pytest.mark.slow)]


def refuse_untiered_property_test(test: object) -> None:
    """A test pytest collects that is itself `@given` runs one example count in whichever tier it
    sits: its slow-tier full count or its fast-tier fraction would be missing."""
    if is_hypothesis_test(test):
        raise TierError(
            "a @given test runs the same example count in every tier: parametrize it with "
            "tests/tiers.py TWINS and run its @given body inside at examples(full, tier)"
        )
