"""How a running sweep shows it is alive and hears Ctrl-C: the heartbeat thread and the Ctrl-C latch."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from search.storage import Store, StoreError

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Stamps the heartbeat of this driver's running trials, so other drivers can tell it is alive."""

    def __init__(self, store: Store, running: Callable[[], list[int]], interval_s: float) -> None:
        super().__init__(name="hwnas-heartbeat", daemon=True)
        self._store, self._running, self._interval_s = store, running, interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval_s):
            try:
                self._store.heartbeat(self._running())
            except StoreError:
                log.warning("heartbeat failed; will retry", exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()


@contextlib.contextmanager
def ctrl_c_latch() -> Iterator[threading.Event]:
    """Remember every Ctrl-C, even one a library swallows: a SIGINT landing in a C extension's first import
    (scipy's HiGHS, loaded with POT on the first EMD) comes out as an ImportError that would otherwise end
    the trial FAILED and let the sweep run on. Python delivers signals to the main thread only."""
    seen = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def remember(signum: int, frame: Any) -> None:
        seen.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
