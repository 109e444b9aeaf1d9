"""One module per lesson (``lesson01``, ...), one ``check_<exercise>`` function per exercise."""

import importlib
import pkgutil


def import_lessons() -> None:
    """Import every lesson's check module once, in a server that forks judges or workers (a lesson's costs a
    fresh process 0.3 s otherwise). They hold no hidden value at import: those are drawn when a check runs,
    from the secret each judge is given (and ``_secret.reset`` in every judge drops anything cached)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("lesson"):
            try:
                importlib.import_module(f"{__name__}.{info.name}")
            except Exception:  # noqa: BLE001 - the process that needs it imports it again and says why
                pass
