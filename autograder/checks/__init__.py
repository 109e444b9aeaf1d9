"""One module per lesson (``lesson01``, ...), one ``check_<exercise>`` function per exercise."""
