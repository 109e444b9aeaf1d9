"""dcgan_ref: the reference DCGAN that every exercise of the course is graded against."""

from ._version import __version__

__all__ = ["__version__"]
