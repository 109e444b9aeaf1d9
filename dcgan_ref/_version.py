"""The version of the dcgan-course package: the one place it is written.

pyproject.toml reads it (``[tool.setuptools.dynamic]``), ``autograder.distribution`` stamps it
into every lesson's setup cell, and the README's Colab badges point at its tag ``v<version>``.
"""

__version__ = "0.1.0"
