"""Checks for every exercise of the course, and the nbgrader pipeline around them."""

__version__ = "0.1.0"
