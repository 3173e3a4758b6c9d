"""``python -m tcpchatx`` is the same as the ``tcpchatx`` command."""

import sys

from .cli import main

sys.exit(main())
