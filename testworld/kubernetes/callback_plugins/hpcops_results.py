# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record every task result as JSON lines, for tests that drive ansible-playbook.

Enabled by the test-world playbook runner (ANSIBLE_CALLBACKS_ENABLED=hpcops_results);
the file is named by HPCOPS_RESULTS_FILE. The screen output stays the default one.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: hpcops_results
    type: aggregate
    short_description: write task results as JSON lines
    description: Appends one JSON object per task result to the file named by HPCOPS_RESULTS_FILE.
    requirements: [enable in configuration]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "hpcops_results"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, status, result):
        path = os.environ.get("HPCOPS_RESULTS_FILE")
        if not path:
            return
        task = result._task
        record = {
            "status": status,
            "host": result._host.get_name(),
            "task": task.get_name(),
            "name": task.name or task.action,
            "action": task.action,
            "tags": sorted(task.tags),
            "time": time.time(),
            "result": dict(result._result, failed=True) if status in ("failed", "ignored") else result._result,
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._write("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._write("unreachable", result)
