# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark aid: the wall seconds of every task and the module runs of every host, by action.

Enabled by benchmarks/site_bench.py only (ANSIBLE_CALLBACKS_ENABLED=bench_timing);
writes a JSON file named by HPCOPS_BENCH_TIMING when the playbook ends:
``{"tasks": [[play, task, action, seconds], ...], "runs": {host: n}, "skipped": {host: n},
"actions": {host: {action: n}}}`` (runs counts the task results that were not skipped, one per task even
for a loop; actions counts module runs, one per loop item that was not skipped).
A task's seconds run from its start to the start of the next task (or of the next play,
or the end), which is what a linear play spends on it across all hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: bench_timing
type: aggregate
short_description: Task seconds and module runs per host, for the benchmarks
description:
  - Writes the wall seconds of every task and the number of module runs per host (in all and by action) to
    the JSON file named by C(HPCOPS_BENCH_TIMING) when the playbook ends.
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._tasks = []
        self._current = None
        self._play = ''
        self._runs = {}
        self._skipped = {}
        self._actions = {}

    def _close(self):
        if self._current is not None:
            play, name, action, start = self._current
            self._tasks.append([play, name, action, round(time.monotonic() - start, 3)])
            self._current = None

    def v2_playbook_on_play_start(self, play):
        self._close()
        self._play = play.get_name()

    def _start(self, task):
        self._close()
        self._current = (self._play, task.get_name(), task.action, time.monotonic())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def _ran(self, result):
        host = result._host.get_name()
        self._runs[host] = self._runs.get(host, 0) + 1
        # a loop runs its module once per item that was not skipped
        items = result._result.get('results') if isinstance(result._result, dict) else None
        runs = len([r for r in items if not (isinstance(r, dict) and r.get('skipped'))]) \
            if isinstance(items, list) else 1
        actions = self._actions.setdefault(host, {})
        actions[result._task.action] = actions.get(result._task.action, 0) + runs

    def v2_runner_on_ok(self, result):
        self._ran(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._ran(result)

    def v2_runner_on_skipped(self, result):
        host = result._host.get_name()
        self._skipped[host] = self._skipped.get(host, 0) + 1

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get('HPCOPS_BENCH_TIMING')
        if path:
            with open(path, 'w') as f:
                json.dump({'tasks': self._tasks, 'runs': self._runs, 'skipped': self._skipped,
                           'actions': self._actions}, f)
