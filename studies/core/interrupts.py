"""Stopping a run on SIGINT or SIGTERM at a safe point.

A run's main thread spends nearly all its time waiting for workers inside
``concurrent.futures``. An exception raised by a signal handler in the middle of that wait can land
inside ``threading.Condition``'s lock handling and surface as ``RuntimeError: release unlocked lock``
instead of the interrupt (seen on a Ctrl-C of ``python -m studies all --preset paper``). So while
the main thread waits (:func:`finished`), a signal is only noted, and the interrupt is raised
between two waits; anywhere else it is raised at once, as Python's own Ctrl-C handler does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading

POLL_S = 0.2
"""Longest wait before a noted signal is raised."""

_state = {"waiting": False, "received": None}


def _on_signal(signum, frame):
    name = signal.Signals(signum).name
    if _state["waiting"]:
        _state["received"] = name
        return
    raise KeyboardInterrupt(f"stopped by {name}")


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM, and SIGINT unless the process was started ignoring it (a background job), stop a run
    as ``KeyboardInterrupt("stopped by SIG…")``; the previous handlers are restored afterwards.
    Outside the main thread (where handlers cannot be set) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signals.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, _on_signal) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state["received"] = None


def finished(futures):
    """Yield each of ``futures`` as it completes; a signal noted while waiting is raised as
    ``KeyboardInterrupt`` after the wait returns, within :data:`POLL_S` seconds."""
    remaining = set(futures)
    while remaining:
        _state["waiting"] = True
        try:
            done, remaining = concurrent.futures.wait(
                remaining, timeout=POLL_S, return_when=concurrent.futures.FIRST_COMPLETED
            )
        finally:
            _state["waiting"] = False
        if _state["received"] is not None:
            received, _state["received"] = _state["received"], None
            raise KeyboardInterrupt(f"stopped by {received}")
        yield from done
