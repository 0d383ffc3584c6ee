"""Ctrl-C and SIGTERM during training: finish the step, save, stop with one line; a second Ctrl-C stops at once."""
import signal
import sys
import threading
import time
from contextlib import contextmanager


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped training after saving a checkpoint; ``signum`` is the signal's number."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """``signum`` (0 until SIGINT or SIGTERM arrives) while ``listening()`` is active."""

    def __init__(self):
        self.signum, self.time = 0, 0.0

    @property
    def name(self):
        return signal.Signals(self.signum).name if self.signum else "a signal on another process"

    def _on_signal(self, signum, _frame):
        if self.signum:
            # torchrun passes a terminal's Ctrl-C on to its workers, which got it already: a repeat within a
            # second is the same request, a later one means "now"
            if time.time() - self.time > 1.0:
                raise KeyboardInterrupt
            return
        self.signum, self.time = signum, time.time()
        print(f"{self.name}: stopping after this step with a checkpoint (Ctrl-C again: at once, without one)",
              file=sys.stderr, flush=True)

    @contextmanager
    def listening(self):
        """Take SIGINT and SIGTERM for the block (only the main thread can; elsewhere this does nothing)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
