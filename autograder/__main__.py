"""``python -m autograder``: release, check, collect, and nbgrader with the course config."""

from autograder.cli import main

raise SystemExit(main())
