"""The shared helpers of conftest.py do what they promise, including failing when they should."""

from __future__ import annotations

import pytest

from autograder.checks._core import CheckFailure


def _check(answer, hidden=False):
    """A stand-in check: CheckFailure naming the mistake unless ``answer`` is 2."""
    if answer != 2:
        raise CheckFailure(f"expected 2, got {answer}: is the factor missing?{' (hidden)' if hidden else ''}")


def test_fails_returns_the_message_and_runs_the_hidden_cases(fails):
    assert fails(_check, 3, words=["got 3", "factor"]) == "expected 2, got 3: is the factor missing? (hidden)"
    assert fails(_check, 3, match=r"got \d", hidden=False).endswith("missing?")


def test_fails_fails_when_the_check_passes_or_names_another_mistake(fails):
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        fails(_check, 2)
    with pytest.raises(AssertionError, match="does not name"):
        fails(_check, 3, words=["padding"])
    with pytest.raises(AssertionError, match="Regex pattern did not match"):
        fails(_check, 3, match="padding")
