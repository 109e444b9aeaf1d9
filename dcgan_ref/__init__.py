"""dcgan_ref: the reference DCGAN that every exercise of the course is graded against."""

__version__ = "0.1.0"
