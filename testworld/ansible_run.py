"""Run ansible-playbook for a test, clear of one start-up failure of ansible-core.

ansible-core 2.20 starts an in-process RPC server before the first play, on a Unix
socket that multiprocessing places under TMPDIR (pymp-XXXXXXXX/sock-XXXXXXXX), and
waits five seconds for it. When TMPDIR is long (a pytest tmp_path of a long test name
under an xdist worker: 76 characters is enough) the socket path exceeds the 108 bytes
AF_UNIX allows, the server thread dies and the run ends with rc 250, "Local RPC server
did not start", before any task ran. short_tmpdir() gives such runs a short TMPDIR.
The same message can also come from a thread starved for five seconds on a loaded
machine; nothing ran then either, so run() starts the command again.
"""

import os
import subprocess
import tempfile
import time

START_FAILURE = "Local RPC server did not start"
START_ATTEMPTS = 3
# Longest TMPDIR kept as it is: the socket path adds about 30 characters and AF_UNIX allows 107.
SHORT_TMPDIR = 40


def short_tmpdir(path):
    """`path`, or a short symlink to it (under the test process's temporary directory) when
    ansible-core's RPC socket under `path` would be too long for AF_UNIX."""
    if len(path) <= SHORT_TMPDIR:
        return path
    link = os.path.join(tempfile.mkdtemp(prefix="hp-"), "t")
    os.symlink(os.path.abspath(path), link)
    return link


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
