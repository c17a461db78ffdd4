"""Child processes that the fault tests start and interrupt."""

from __future__ import annotations

import sys

#: ``python -m glmmsim.cli`` for a child that a test interrupts: with Ctrl-C's handler even when this
#: run ignores SIGINT (started in the background or under nohup, which the child would inherit, and a
#: command leaves an ignored signal ignored).
INTERRUPTIBLE_CLI = (sys.executable, "-c", "import signal, runpy; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "runpy.run_module('glmmsim.cli', run_name='__main__')")
