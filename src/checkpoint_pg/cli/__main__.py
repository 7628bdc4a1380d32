"""``python -m checkpoint_pg.cli``: the ``checkpoint-pg`` command."""

import sys

from checkpoint_pg.cli import main

sys.exit(main())
