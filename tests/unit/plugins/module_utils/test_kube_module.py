# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CoeKubeModule: what the base records of a run and how it ends it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpcops.coe.plugins.module_utils import kube_module
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeKube


class Ended(Exception):
    def __init__(self, how, result):
        super(Ended, self).__init__(how)
        self.how = how
        self.result = result


def _exit(**result):
    raise Ended('exit', result)


def _fail(**result):
    raise Ended('fail', result)


def base(diff_mode=False, objects=None):
    """A CoeKubeModule as __call__ leaves it before run(), on FakeKube instead of an API server."""
    mod = object.__new__(kube_module.CoeKubeModule)
    mod.module = mock.MagicMock(check_mode=False, _diff=diff_mode, params={'wait_timeout': 0})
    mod.module.exit_json.side_effect = _exit
    mod.module.fail_json.side_effect = _fail
    mod.params = mod.module.params
    mod.kube = FakeKube(module=mod.module, objects=objects)
    mod.changed, mod.objects, mod.diffs, mod.diff = False, [], {'before': {}, 'after': {}}, None
    return mod


def config_map(name, value):
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name, 'namespace': 'ns'},
            'data': {'k': value}}


def test_apply_records_every_object_and_the_diff_of_the_changed_ones():
    existing = config_map('same', 'v')
    mod = base(diff_mode=True, objects={('v1', 'ConfigMap', 'ns', 'same'): existing})
    mod.apply(config_map('same', 'v'))
    mod.apply(config_map('new', 'v'))
    with pytest.raises(Ended) as ended:
        mod.exit(extra=1)
    result = ended.value.result
    assert ended.value.how == 'exit' and result['changed'] is True and result['extra'] == 1
    assert mod.objects == ['ConfigMap ns/same', 'ConfigMap ns/new']
    assert list(result['diff']['after']) == ['ConfigMap ns/new'] and result['diff']['before'] == {'ConfigMap ns/new': {}}


def test_no_diff_outside_diff_mode_and_a_set_diff_replaces_the_recorded_one():
    mod = base()
    mod.apply(config_map('new', 'v'))
    with pytest.raises(Ended) as ended:
        mod.exit()
    assert 'diff' not in ended.value.result
    mod = base(diff_mode=True)
    mod.diff = mod.apply(config_map('new', 'v'))['diff']
    with pytest.raises(Ended) as ended:
        mod.exit()
    assert ended.value.result['diff']['after']['data'] == {'k': 'v'}


def test_a_failure_after_a_change_says_changed():
    mod = base()
    mod.apply(config_map('new', 'v'))
    with pytest.raises(Ended) as ended:
        mod.fail('later step broke')
    assert ended.value.how == 'fail' and ended.value.result['changed'] is True


def test_wait_outcome_tells_a_failure_from_a_timeout():
    mod = base()
    failed = mod.wait('x', lambda: 'broken', lambda v: False, is_failed=lambda v: v == 'broken')
    assert (failed.done, failed.failed, failed.value) == (False, True, 'broken')
    timed_out = mod.wait('x', lambda: 'slow', lambda v: False, is_failed=lambda v: v == 'broken')
    assert (timed_out.done, timed_out.failed) == (False, False)
    done = mod.wait('x', lambda: 'ready', lambda v: v == 'ready')
    assert (done.done, done.failed, done.value) == (True, False, 'ready')


class Checks(kube_module.CoeKubeModule):
    argument_spec = dict(name=dict(type='str', required=True))
    common_options = ('wait_timeout',)


def test_a_module_gets_the_connection_options_and_only_the_common_options_it_names():
    with patch_module_args({'name': 'x'}):
        spec = Checks().params
    assert 'name' in spec and 'wait_timeout' in spec and 'kubeconfig' in spec
    assert not set(spec) & {'state', 'field_manager', 'force_conflicts', 'wait', 'wait_sleep'}


def test_no_diff_from_a_module_that_returns_none():
    mod = base(diff_mode=True)
    mod.returns_diff = False
    mod.apply(config_map('new', 'v'))
    with pytest.raises(Ended) as ended:
        mod.exit()
    assert ended.value.result['changed'] is True and 'diff' not in ended.value.result
