"""Run ansible-playbook for a test, riding out one start-up failure of ansible-core.

ansible-core 2.20 starts an in-process RPC server before the first play and gives it
five seconds; on a loaded two-core machine the thread sometimes misses that window and
the run ends with rc 250, "Local RPC server did not start", before any task ran. Nothing
was changed, so running the same command again is safe; any other outcome is returned
as it is.
"""

import subprocess
import time

START_FAILURE = "Local RPC server did not start"
START_ATTEMPTS = 3


def did_not_start(returncode, stderr):
    """Whether a finished run is ansible-core's start-up failure (no task ran)."""
    return returncode == 250 and START_FAILURE in (stderr or "")


def run(cmd, **kwargs):
    """subprocess.run(cmd, **kwargs), repeated while ansible-core failed to start."""
    for attempt in range(START_ATTEMPTS):
        proc = subprocess.run(cmd, **kwargs)  # pylint: disable=subprocess-run-check
        stderr = proc.stderr if isinstance(proc.stderr, str) else (proc.stderr or b"").decode("utf-8", "replace")
        if not did_not_start(proc.returncode, stderr) or attempt == START_ATTEMPTS - 1:
            return proc
        time.sleep(1 + attempt)
    return proc
