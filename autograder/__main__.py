"""``python -m autograder``: release, check, collect, and nbgrader with the course config."""

import gc

from autograder.cli import main

code = main()
gc.freeze()  # the work is done: the interpreter's exit need not walk every object torch and nbgrader made
raise SystemExit(code)
