"""``python -m dcgan_ref``: see ``dcgan_ref.cli``."""

import sys

from .cli import main

sys.exit(main())
