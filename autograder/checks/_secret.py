"""Hidden cases' values come from the instructor's secret, so the published checks never determine them.

The secret is, in order: ``AUTOGRADER_SECRET`` in the environment; the git-ignored file
``autograder/secret`` in the course root (``DCGAN_COURSE_ROOT`` or the repository); else a random
secret drawn once per process, and ``secret_source()`` says so (a re-grade then draws other hidden
values: same grade for a correct answer, but not a reproducible report). Shapes and edge cases
may stay public; only the *values* of hidden inputs are seeded from here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from pathlib import Path

ENV = "AUTOGRADER_SECRET"
FILE = Path("autograder") / "secret"
RANDOM = "random for this run (set AUTOGRADER_SECRET or write autograder/secret to reproduce hidden cases)"


def _course_root() -> Path:
    env = os.environ.get("DCGAN_COURSE_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def _secret() -> tuple[bytes, str]:
    value = os.environ.get(ENV)
    if value:
        return value.encode(), f"${ENV}"
    path = _course_root() / FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    if text:
        return text.encode(), str(path)
    # hex, so the same secret reaches the judge process through AUTOGRADER_SECRET byte for byte
    return secrets.token_hex(32).encode(), RANDOM


def secret_source() -> str:
    """Where the secret came from, for the report: an env var, a file, or 'random for this run'."""
    return _secret()[1]


def secret_value() -> str:
    """The secret itself, for the grader's judge process only (never the worker's environment)."""
    return _secret()[0].decode()


def is_random() -> bool:
    """True when no instructor secret was found (hidden values differ from run to run)."""
    return _secret()[1].startswith("random")


def hidden_seed(*parts: object) -> int:
    """A 63-bit seed for one hidden case, from the secret and ``parts`` (e.g. lesson, exercise, index)."""
    h = hashlib.sha256(_secret()[0])
    for p in parts:
        h.update(b"\x00" + repr(p).encode())
    return int.from_bytes(h.digest()[:8], "big") >> 1


def reset() -> None:
    """Forget the cached secret (tests that change the environment)."""
    _secret.cache_clear()
