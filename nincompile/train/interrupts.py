"""Ctrl-C and SIGTERM during the epochs: held where they land, raised between batches.

Python runs a signal handler in the main thread at whatever line it is on.  During
``fit`` that can be inside a destructor (an exception there is printed and dropped),
in a library that clears errors raised from its callbacks, or between taking a lock
and the ``try`` that releases it; a stop raised there can be lost, and the run then
trains on to its last epoch, or hangs.  Inside :func:`held`, the handlers of SIGINT
(Python's own) and SIGTERM (where the caller made it raise, as ``nincompile train``
does) only note the signal; :func:`check` raises it, as each batch begins (the
:class:`Check` callback), at each epoch's start and when the block ends.  A stop
therefore waits at most one batch (or one epoch's commit), and always arrives.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from ..errors import Stopped
from ..keras_import import import_keras

keras = import_keras()

_noted: list[int] = []  # the signals noted inside held(), first first


def _raises(handler) -> bool:
    """Whether ``handler`` is a Python function (it raises to stop), not SIG_DFL or
    SIG_IGN (the process ends, or carries on, without Python's help)."""
    return callable(handler)


@contextlib.contextmanager
def held():
    """Inside, SIGINT and SIGTERM whose handlers raise are noted instead; :func:`check`
    raises the first one noted, and so does leaving the block.  Nothing is held outside
    the main thread (signals are delivered to it only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def note(signum, frame):
        _noted.append(signum)

    _noted.clear()
    for signum, handler in previous.items():
        if _raises(handler):
            signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if _raises(handler):
                signal.signal(signum, handler)
    check()


def check() -> None:
    """Raise the first signal noted inside :func:`held`: ``KeyboardInterrupt`` for
    SIGINT, :class:`~nincompile.errors.Stopped` for SIGTERM."""
    if not _noted:
        return
    signum = _noted[0]
    _noted.clear()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


class Check(keras.callbacks.Callback):
    """Raises a noted stop as every training and validation batch begins: Keras calls
    it from the main thread, between steps, where an exception unwinds cleanly.  The
    batch's start, not its end: a callback with its own ``on_*_batch_end`` would make
    Keras read every batch's logs back in the main thread (no asynchronous dispatch),
    which stalls a GPU at each step."""

    def on_train_batch_begin(self, batch, logs=None):
        check()

    def on_test_batch_begin(self, batch, logs=None):
        check()
