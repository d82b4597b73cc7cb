# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live progress for modules that wait a long time (clusters, nodegroups).

A module's output reaches the console only when it ends, and a bare-metal cluster
can take an hour. When the module runs on the controller itself (localhost, the
usual place for cloud API calls), this action runs it in a thread and prints the
status lines it writes while waiting, plus a heartbeat with the elapsed time.
Elsewhere, and in check mode, it simply runs the module.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import tempfile
import threading
import time
import traceback

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hpcops.coe.plugins.module_utils.waiting import PROGRESS_FILE_ENV

display = Display()

HEARTBEAT_SECONDS = 30
POLL_SECONDS = 1.0


class ActionModule(ActionBase):

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        if self._task.check_mode or getattr(self._connection, 'transport', None) != 'local':
            result.update(self._execute_module(task_vars=task_vars))
            return result

        fd, progress_file = tempfile.mkstemp(prefix='hpcops-coe-progress-')
        os.close(fd)
        environments = self._task.environment or []
        if not isinstance(environments, list):
            environments = [environments]
        self._task.environment = environments + [{PROGRESS_FILE_ENV: progress_file}]
        outcome = {}
        errors = []

        def execute():
            # An exception in a thread dies with the thread; it is carried back so the task fails
            # with it, as it would had the module run in this thread.
            try:
                outcome.update(self._execute_module(task_vars=task_vars))
            except Exception as exc:  # pylint: disable=broad-except
                errors.append((exc, traceback.format_exc()))

        worker = threading.Thread(target=execute)
        try:
            worker.start()
            self._show_progress(worker, progress_file, (task_vars or {}).get('inventory_hostname', 'localhost'))
            worker.join()
        finally:
            self._task.environment = environments
            os.unlink(progress_file)
        if errors:
            exc, trace = errors[0]
            if isinstance(exc, AnsibleError):
                message = to_text(exc)
            else:
                message = 'Unexpected failure while running the module: %s: %s' % (type(exc).__name__, to_text(exc))
            result.update(failed=True, msg=message, exception=trace)
            return result
        result.update(outcome)
        return result

    def _show_progress(self, worker, progress_file, host):
        started = time.monotonic()
        next_heartbeat = HEARTBEAT_SECONDS
        offset = 0
        last = None
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            with open(progress_file) as stream:
                stream.seek(offset)
                lines = stream.read().splitlines()
                offset = stream.tell()
            for line in lines:
                display.display('  [%s] %s' % (host, line))
                last = line
            elapsed = time.monotonic() - started
            if worker.is_alive() and elapsed >= next_heartbeat:
                display.display('  [%s] %s: still running after %dm%02ds (last: %s)' % (
                    host, self._task.get_name(), elapsed // 60, elapsed % 60, last or 'no status yet'))
                next_heartbeat += HEARTBEAT_SECONDS
