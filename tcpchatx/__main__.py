"""``python -m tcpchatx`` is the ``tcpchatx`` command, torn down as usual at the end
(it may run inside another program: ``%run -m tcpchatx`` in a notebook)."""

import sys

from .cli import main

sys.exit(main())
