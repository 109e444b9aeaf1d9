"""The error every grading stage shares, in a module without torch: the class driver imports it."""


class GradingError(RuntimeError):
    """The notebook cannot be graded at all (no course, no source tests, no sandbox): a one-line reason."""
