"""``python -m batchwright``: the ``batchwright`` command."""

import sys

from batchwright.cli import main

sys.exit(main())
