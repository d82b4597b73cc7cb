# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils.waiting import (
    ProgressLog,
    WaitFailed,
    WaitTimeout,
    wait_for,
)
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import Clock


def seq(*values):
    it = iter(values)
    last = [None]

    def fetch():
        try:
            last[0] = next(it)
        except StopIteration:
            pass
        return last[0]
    return fetch


def test_returns_value_when_done():
    clock = Clock()
    res = wait_for(seq('A', 'A', 'B'), lambda v: v == 'B', timeout=60, clock=clock, sleep=clock.sleep)
    assert res.value == 'B' and res.polls == 3


def test_interval_grows_and_is_capped():
    clock = Clock()
    with pytest.raises(WaitTimeout):
        wait_for(lambda: 'x', lambda v: False, timeout=300, interval=2, max_interval=10, backoff=2,
                 clock=clock, sleep=clock.sleep)
    assert clock.sleeps[:4] == [2, 4, 8, 10]
    assert max(clock.sleeps) == 10


def test_timeout_never_oversleeps_and_keeps_last_value():
    clock = Clock()
    with pytest.raises(WaitTimeout) as err:
        wait_for(lambda: 'CREATE_IN_PROGRESS', lambda v: False, timeout=7, interval=3, backoff=1,
                 clock=clock, sleep=clock.sleep)
    assert sum(clock.sleeps) == 7
    assert err.value.last == 'CREATE_IN_PROGRESS' and err.value.polls == 4
    assert 'timed out after 7 s' in str(err.value)


def test_failure_is_reported_with_value():
    clock = Clock()
    with pytest.raises(WaitFailed) as err:
        wait_for(seq('IN', 'CREATE_FAILED'), lambda v: v == 'DONE', lambda v: v.endswith('FAILED'),
                 timeout=60, clock=clock, sleep=clock.sleep, what='cluster create')
    assert err.value.last == 'CREATE_FAILED' and 'cluster create failed' in str(err.value)


def test_zero_timeout_polls_once():
    clock = Clock()
    with pytest.raises(WaitTimeout):
        wait_for(lambda: 1, lambda v: False, timeout=0, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_fetch_errors_propagate():
    def boom():
        raise RuntimeError('api down')
    with pytest.raises(RuntimeError):
        wait_for(boom, lambda v: True, timeout=10)


def test_progress_log_records_transitions_and_logs_periodically():
    lines = []
    log = ProgressLog("cluster 'x' create", lambda v: v, log=lines.append, every=60)
    for elapsed, status in [(0, 'CREATE_IN_PROGRESS'), (30, 'CREATE_IN_PROGRESS'), (70, 'CREATE_IN_PROGRESS'),
                            (80, 'CREATE_COMPLETE')]:
        log(status, elapsed, 1)
    assert [t['status'] for t in log.transitions] == ['CREATE_IN_PROGRESS', 'CREATE_COMPLETE']
    assert len(lines) == 3
    assert lines[-1].startswith("cluster 'x' create: CREATE_COMPLETE after 80 s")
    assert log.as_dict()['seconds'] == 80
