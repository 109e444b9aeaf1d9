"""Checks for every exercise of the course, and the nbgrader pipeline around them."""

from dcgan_ref._version import __version__ as __version__  # the one version (pyproject reads it too)
