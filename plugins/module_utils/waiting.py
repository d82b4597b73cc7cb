# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One poller for every long OpenStack operation (cluster create, resize, delete...)."""

import time


class WaitError(Exception):
    """Base of the poller's outcomes that are not success."""

    def __init__(self, message, last=None, elapsed=0.0, polls=0):
        super(WaitError, self).__init__(message)
        self.last = last
        self.elapsed = elapsed
        self.polls = polls


class WaitTimeout(WaitError):
    """The deadline passed before is_done() became true."""


class WaitFailed(WaitError):
    """is_failed() became true: the operation ended badly."""


class WaitResult(object):
    def __init__(self, value, elapsed, polls):
        self.value = value
        self.elapsed = elapsed
        self.polls = polls


def wait_for(fetch, is_done, is_failed=None, timeout=600, interval=2.0, max_interval=30.0,
             backoff=1.5, progress=None, what='the operation', clock=None, sleep=None):
    """Poll `fetch()` until `is_done(value)`; raise on failure or at the deadline.

    The interval grows by `backoff` up to `max_interval` (long Magnum creates
    take tens of minutes: a fixed short interval would hammer the API), and a
    sleep never overshoots the deadline. `progress(value, elapsed, polls)` is
    called after every poll so callers can log status lines.

    A `fetch` exception propagates unchanged: callers decide what is
    transient (they usually wrap fetch in a retry).
    """
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    start = clock()
    deadline = start + max(0, timeout)
    delay = max(0.01, float(interval))
    polls = 0
    while True:
        value = fetch()
        polls += 1
        elapsed = clock() - start
        if progress is not None:
            progress(value, elapsed, polls)
        if is_done(value):
            return WaitResult(value, elapsed, polls)
        if is_failed is not None and is_failed(value):
            raise WaitFailed('%s failed after %.0f s' % (what, elapsed), value, elapsed, polls)
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout('timed out after %.0f s waiting for %s' % (elapsed, what),
                              value, elapsed, polls)
        sleep(min(delay, remaining))
        delay = min(max_interval, delay * backoff)


# Set by the action plugins of long-running modules (cluster, cluster_nodegroup): the
# module appends its progress lines to this file and the controller prints them live.
PROGRESS_FILE_ENV = 'HPCOPS_COE_PROGRESS_FILE'


class ProgressLog(object):
    """A progress callback that records status transitions with elapsed time.

    Lines go to `log` (the module's syslog/journal logger) on every change of
    the reported status and at least every `every` seconds otherwise; the
    transitions are kept for the module's return value.
    """

    def __init__(self, what, status_of, log=None, every=60.0):
        self.what = what
        self.status_of = status_of
        self.log = log
        self.every = every
        self.transitions = []
        self._last_status = object()
        self._last_line = None
        self.polls = 0
        self.elapsed = 0.0

    def __call__(self, value, elapsed, polls):
        self.polls = polls
        self.elapsed = elapsed
        status = self.status_of(value)
        changed = status != self._last_status
        if changed:
            self.transitions.append({'status': status, 'elapsed': round(elapsed, 1)})
            self._last_status = status
        if self.log is not None and (changed or self._last_line is None
                                     or elapsed - self._last_line >= self.every):
            self._last_line = elapsed
            self.log('%s: %s after %.0f s (poll %d)' % (self.what, status, elapsed, polls))

    def as_dict(self):
        return {'what': self.what, 'seconds': round(self.elapsed, 1), 'polls': self.polls,
                'transitions': list(self.transitions)}
