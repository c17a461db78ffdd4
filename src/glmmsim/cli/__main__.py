"""``python -m glmmsim.cli``: the same as the ``glmmsim`` command."""

import sys

from .main import main

sys.exit(main())
