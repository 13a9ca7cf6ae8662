"""The start of a local pool worker, kept light: a worker whose driver died exits before it imports torch."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys


def die_with_parent() -> None:
    """Process-pool initializer: a worker must not outlive a killed driver (Linux prctl PDEATHSIG).

    A worker is spawned, so it reaches this initializer only after it has imported this module (which is
    why it imports nothing heavy): a driver killed before then leaves an orphan that exits here, instead of
    spending tens of CPU seconds importing the training stack for nothing.
    """
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        parent = multiprocessing.parent_process()
        if parent is not None and os.getppid() != parent.pid:
            os._exit(1)  # the driver died while this worker started up, before the signal was armed
    import torch

    torch.set_num_threads(1)
