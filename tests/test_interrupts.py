"""A Ctrl-C or SIGTERM that lands in a finalizer (where Python swallows it) still stops the command."""

import gc
import importlib
import os
import signal

import pytest

from glmmsim import interrupts
from glmmsim.outputs import claim

# the swallowed exception is what these tests cause; pytest reports it as a warning
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

cli_main = importlib.import_module("glmmsim.cli.main")  # the module, not the function glmmsim.cli.main


@pytest.fixture(autouse=True)
def interruptible():
    """Ctrl-C's usual handler, also when this run ignores SIGINT (started in the background)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _SignalsWhenFreed:
    """An object whose ``__del__`` receives ``sig``: Python prints "Exception ignored" and carries on."""

    def __init__(self, sig):
        self.sig = sig

    def __del__(self):
        os.kill(os.getpid(), self.sig)
        sum(range(1000))  # bytecodes for the handler to run at


def _swallowed(sig):
    obj = _SignalsWhenFreed(sig)
    del obj
    gc.collect()


@pytest.mark.parametrize("sig, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, interrupts.Terminated)])
def test_a_signal_swallowed_by_a_finalizer_is_raised_again(sig, raised):
    with interrupts.catching():
        _swallowed(sig)  # does not raise here
        assert interrupts.received() == sig
        with pytest.raises(raised):
            interrupts.raise_if_interrupted()
    assert interrupts.received() is None  # forgotten when the block ends
    interrupts.raise_if_interrupted()  # nothing to raise outside


def test_an_output_is_not_published_after_a_swallowed_interrupt(tmp_path):
    target = tmp_path / "out.csv"
    discarded = []
    with interrupts.catching(), pytest.raises(KeyboardInterrupt):
        with claim(target, on_discard=lambda given, partial: discarded.append(partial)) as partial:
            with open(partial, "w") as f:
                f.write("x\n1\n")
            _swallowed(signal.SIGINT)
    assert not target.exists()
    assert os.listdir(tmp_path) == [] and len(discarded) == 1


@pytest.mark.parametrize("sig, status, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_the_command_exits_as_interrupted_after_a_swallowed_signal(monkeypatch, capsys, sig, status, said):
    def finishes_after_a_swallowed_signal(argv, stdout, stderr):
        _swallowed(sig)
        return 0

    monkeypatch.setattr(cli_main, "_main", finishes_after_a_swallowed_signal)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert cli_main.main([]) == status
    assert f"glmmsim: {said}" in capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are put back


def test_an_ignored_signal_stays_ignored():
    """A command started in the background (SIGINT ignored, as under nohup) is not stopped by Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.catching():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN  # still caught
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
