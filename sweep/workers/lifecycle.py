"""How a worker process ends or renews itself.

TensorFlow never frees traced graphs or GPU memory inside a process, and a training step
blocked in its runtime cannot be interrupted: in both cases the remedy is a fresh process.
"""

from __future__ import annotations

import os
import sys

from sweep import interrupt

TRIALS_LEFT = "SWEEP_WORKER_TRIALS_LEFT"  # a renewed worker's remaining --max-trials


def renew_process(trials_left: int | None = None) -> None:
    """Replace this process with a fresh one (same pid, same arguments). Safe from any
    thread: ``execv`` replaces every thread, a blocked one included."""
    sys.stdout.flush()
    sys.stderr.flush()
    if trials_left is not None:
        os.environ[TRIALS_LEFT] = str(trials_left)
    os.execv(sys.executable, [sys.executable, "-m", "sweep", *sys.argv[1:]])


def leave_process(*, stopped: bool) -> None:
    """After the watchdog abandoned a blocked step: end the process if a stop was asked
    for (with the code of a clean stop), otherwise renew it to go on with the study."""
    if not stopped:
        renew_process()
        return
    name = interrupt.requested_signal()
    print(f"stopped ({name}): the training step did not return, so it was abandoned; the "
          "trial was queued again and resumes from its last checkpoint.", file=sys.stderr,
          flush=True)
    sys.stdout.flush()
    os._exit(interrupt.stop_exit_code(name))
