"""What several test files share: asserting that a check fails with a message, and one course.

- ``fails``: run a check on a deliberately wrong answer and assert it raises ``CheckFailure``
  naming the mistake (the helper that tests/test_checks_lesson04/06/07/10.py each write for
  themselves as ``expect_failure`` / ``fails``).
- ``generated_course``: one throw-away copy of the course (the fixture lesson and every real
  lesson) with ``nbgrader generate_assignment`` run once, for the whole session: the nbgrader
  tests submit into it and must not change its ``source/`` or ``release/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autograder.checks._core import CheckFailure


def check_fails(check: Callable, *args, words: tuple[str, ...] | list[str] = (), match: str | None = None,
                hidden: bool = True) -> str:
    """``check(*args, hidden=hidden)`` must raise CheckFailure whose message holds every one of
    ``words`` (and matches the regex ``match``); returns the message for further asserts."""
    with pytest.raises(CheckFailure, match=match) as info:
        check(*args, hidden=hidden)
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"the message does not name {missing}: {message}"
    return message


@pytest.fixture
def fails() -> Callable[..., str]:
    """The ``check_fails`` helper: ``fails(check, answer, words=["padding"])``."""
    return check_fails


@pytest.fixture(scope="session")
def generated_course(tmp_path_factory) -> Path:
    """A copy of the course (fixture lesson + real lessons) with every assignment generated into a
    fresh gradebook by ``nbgrader generate_assignment``; built once per test process."""
    from course_fixture import build_course, nbgrader

    root = build_course(tmp_path_factory.mktemp("course"), with_real_lessons=True)
    nbgrader(root, "generate_assignment", "*", "--force", "--log-level=WARN")
    return root
