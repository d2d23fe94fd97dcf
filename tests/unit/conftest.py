from __future__ import annotations

import signal
import threading

import pytest


@pytest.fixture
def no_hang():
    """Fail the test instead of hanging it (a FIFO opened for reading blocks until a writer comes).
    The alarm goes to the main thread itself: MXNet's threads may take a process-directed signal,
    and a system call blocked in the main thread would then never be interrupted."""

    def expired(signum, frame):
        raise TimeoutError("blocked for 10 s")

    previous = signal.signal(signal.SIGALRM, expired)
    timer = threading.Timer(10, signal.pthread_kill, (threading.main_thread().ident, signal.SIGALRM))
    timer.start()
    yield
    timer.cancel()
    signal.signal(signal.SIGALRM, previous)
