# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress action of hpcops.coe.cluster: what the task result is when the module run in its thread ends."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock

from ansible.errors import AnsibleError

from ansible_collections.hpcops.coe.plugins.action import cluster as progress_action


def action(execute):
    task = mock.MagicMock(check_mode=False, async_val=0, environment=None, args={})
    task.get_name.return_value = 'create the cluster'
    connection = mock.MagicMock(transport='local')
    connection._shell.tmpdir = 'set'  # ActionBase.run would otherwise make a remote tmp path
    plugin = progress_action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(),
                                          mock.MagicMock())
    plugin._execute_module = execute
    return plugin


def test_module_result_is_returned():
    plugin = action(lambda task_vars: {'changed': True, 'cluster': {'name': 'hpc'}})
    result = plugin.run(task_vars={'inventory_hostname': 'localhost'})
    assert result['changed'] is True and result['cluster'] == {'name': 'hpc'}
    assert not result.get('failed')


def test_an_error_in_the_worker_thread_fails_the_task():
    def execute(task_vars):
        raise AnsibleError('the module could not be transferred: disk full')

    result = action(execute).run(task_vars={'inventory_hostname': 'localhost'})
    assert result.get('failed') is True, result
    assert 'disk full' in result['msg']


def test_an_unexpected_exception_in_the_worker_thread_fails_the_task_with_its_traceback():
    def execute(task_vars):
        raise KeyError('ansible_python_interpreter')

    result = action(execute).run(task_vars={'inventory_hostname': 'localhost'})
    assert result.get('failed') is True, result
    assert 'ansible_python_interpreter' in result['msg'] and 'KeyError' in result['msg']
    assert 'Traceback' in result['exception']
