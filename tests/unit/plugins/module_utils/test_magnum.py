# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg


@pytest.mark.parametrize('status, family', [
    ('CREATE_IN_PROGRESS', mg.IN_PROGRESS), ('UPDATE_IN_PROGRESS', mg.IN_PROGRESS),
    ('DELETE_IN_PROGRESS', mg.IN_PROGRESS), ('ROLLBACK_IN_PROGRESS', mg.IN_PROGRESS),
    ('CREATE_COMPLETE', mg.COMPLETE), ('RESUME_COMPLETE', mg.COMPLETE), ('CHECK_COMPLETE', mg.COMPLETE),
    ('ADOPT_COMPLETE', mg.COMPLETE), ('SNAPSHOT_COMPLETE', mg.COMPLETE),
    ('CREATE_FAILED', mg.FAILED), ('ROLLBACK_FAILED', mg.FAILED), ('RESUME_FAILED', mg.FAILED),
    (None, mg.UNKNOWN), ('', mg.UNKNOWN), ('active', mg.UNKNOWN),
])
def test_status_family(status, family):
    assert mg.status_family(status) == family


def test_normalize_labels_makes_everything_strings():
    assert mg.normalize_labels({'a': 1, 'b': True, 'c': False, 'd': 1.5, 'e': 'x', 'f': None, 3: 'y'}) == {
        'a': '1', 'b': 'true', 'c': 'false', 'd': '1.5', 'e': 'x', 'f': '', '3': 'y'}
    assert mg.normalize_labels(None) is None


@pytest.mark.parametrize('bad', [{'a': [1]}, {'a': {'b': 1}}, 'a=b'])
def test_normalize_labels_rejects_structures(bad):
    with pytest.raises(mg.MagnumInputError):
        mg.normalize_labels(bad)


def test_labels_match_with_and_without_merge():
    current = {'kube_tag': 'v1', 'gpu': 'true'}
    assert mg.labels_match(current, {'gpu': 'true'}, merge_labels=True)
    assert not mg.labels_match(current, {'gpu': 'true'}, merge_labels=False)
    assert mg.labels_match(current, {'kube_tag': 'v1', 'gpu': 'true'}, merge_labels=False)
    assert not mg.labels_match(current, {'gpu': 'false'}, merge_labels=True)
    assert mg.labels_match(current, None, merge_labels=False)


def test_label_differences_lists_extra_keys_without_merge():
    diffs = mg.label_differences({'a': '1', 'b': '2'}, {'a': '3'}, merge_labels=False)
    assert diffs == {'a': ('1', '3'), 'b': ('2', None)}


def test_effective_labels():
    assert mg.effective_labels({'a': '1', 'b': '2'}, {'b': '3'}, True) == {'a': '1', 'b': '3'}
    assert mg.effective_labels({'a': '1'}, {'b': '3'}, False) == {'b': '3'}
    assert mg.effective_labels({'a': '1'}, None, False) == {'a': '1'}


@pytest.mark.parametrize('name, ok', [('k8s', True), ('a.b_c-d1', True), ('1abc', False), ('', False),
                                      ('a b', False), ('a' * 242, True), ('a' * 243, False)])
def test_validate_name(name, ok):
    if ok:
        mg.validate_name(name)
    else:
        with pytest.raises(mg.MagnumInputError):
            mg.validate_name(name)


def test_match_name_or_id_prefers_uuid_and_refuses_ambiguity():
    items = [{'uuid': 'u1', 'name': 'a', 'status': 'CREATE_COMPLETE'},
             {'uuid': 'u2', 'name': 'a', 'status': 'CREATE_FAILED'},
             {'uuid': 'u3', 'name': 'b'}]
    assert mg.match_name_or_id(items, 'u2', 'cluster')['uuid'] == 'u2'
    assert mg.match_name_or_id(items, 'b', 'cluster')['uuid'] == 'u3'
    assert mg.match_name_or_id(items, 'zz', 'cluster') is None
    with pytest.raises(mg.MagnumInputError) as err:
        mg.match_name_or_id(items, 'a', 'cluster')
    assert 'u1' in str(err.value) and 'u2' in str(err.value) and 'CREATE_FAILED' in str(err.value)


def test_match_name_skips_excluded():
    items = [{'uuid': 'u1', 'name': 'a', 'status': 'DELETE_IN_PROGRESS'}, {'uuid': 'u2', 'name': 'a'}]
    hit = mg.match_name_or_id(items, 'a', 'cluster', exclude=lambda c: mg.is_deleting(c.get('status')))
    assert hit['uuid'] == 'u2'


def test_keeper_is_the_first_listed_live_one():
    items = [{'uuid': 'old', 'name': 'a', 'status': 'DELETE_IN_PROGRESS'},
             {'uuid': 'u1', 'name': 'a', 'status': 'CREATE_IN_PROGRESS'},
             {'uuid': 'u2', 'name': 'a', 'status': 'CREATE_IN_PROGRESS'}]
    assert mg.keeper_of(items, 'a')['uuid'] == 'u1'
    assert mg.keeper_of(items, 'b') is None


@pytest.mark.parametrize('cluster, template, kind', [
    ({'stack_id': '6b1a0e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f'}, None, mg.DRIVER_HEAT),
    ({'cluster_id': '6b1a0e2f3a4b4c5d8e9f0a1b2c3d4e5f'}, None, mg.DRIVER_HEAT),
    ({'stack_id': 'kube-ab12c'}, None, mg.DRIVER_CAPI),
    ({'stack_id': 'hpc-k8s-x7y2z9a0b1c2'}, None, mg.DRIVER_CAPI),
    ({'stack_id': None, 'status': 'CREATE_COMPLETE', 'api_address': 'https://1.2.3.4:6443',
      'master_addresses': [], 'node_addresses': []}, None, mg.DRIVER_CAPI),
    ({'stack_id': None, 'status': 'CREATE_IN_PROGRESS'}, None, mg.DRIVER_UNKNOWN),
    ({'stack_id': None}, {'driver': 'k8s_capi_helm_v1'}, mg.DRIVER_CAPI),
    ({'stack_id': None}, {'driver': 'k8s_fedora_coreos_v1'}, mg.DRIVER_HEAT),
])
def test_driver_kind(cluster, template, kind):
    assert mg.driver_kind(cluster, template) == kind


def test_summarize_cluster_has_stable_keys():
    out = mg.summarize_cluster({'uuid': 'u', 'name': 'n', 'status': 'CREATE_COMPLETE', 'cluster_id': 'kube-ab12c',
                                'labels': None, 'master_addresses': None}, {'name': 'tpl'},
                               nodegroups=[{'uuid': 'g', 'name': 'default-worker', 'status': 'CREATE_COMPLETE'}])
    assert out['id'] == 'u' and out['stack_id'] == 'kube-ab12c' and out['cluster_id'] == 'kube-ab12c'
    assert out['driver_kind'] == 'capi' and out['cluster_template_name'] == 'tpl'
    assert out['labels'] == {} and out['master_addresses'] == [] and out['node_addresses'] == []
    assert out['nodegroups'][0]['id'] == 'g' and out['nodegroups'][0]['status_family'] == mg.COMPLETE
    assert set(mg.CLUSTER_SUMMARY_FIELDS) <= set(out)


@pytest.mark.parametrize('text, value', [('1.10', (1, 10)), ('container-infra 1.12', (1, 12)),
                                         ('latest', (99999, 0)), ('garbage', None), (None, None)])
def test_version_tuple(text, value):
    assert mg.version_tuple(text) == value


def test_version_ordering_is_numeric_not_lexical():
    assert mg.version_tuple('1.10') > mg.version_tuple('1.9')


CURRENT = {'node_count': 3, 'master_count': 1, 'cluster_template_id': 't1', 'flavor_id': 'm1.small',
           'master_flavor_id': 'f-large', 'keypair': 'ops', 'labels': {'kube_tag': 'v1', 'gpu': 'true'},
           'floating_ip_enabled': False, 'master_lb_enabled': True, 'docker_volume_size': 50,
           'fixed_network': 'net-1', 'fixed_subnet': None}


def test_plan_nothing_to_do():
    plan = mg.plan_cluster_changes(CURRENT, {'node_count': 3, 'cluster_template_id': 't1',
                                             'flavor_id': ['f-small', 'f-small', 'm1.small'],
                                             'labels': {'gpu': 'true'}, 'merge_labels': True})
    assert plan == {'resize': None, 'nodes_to_remove': [], 'upgrade': None, 'rejected': []}


def test_plan_resize_upgrade_and_removals():
    plan = mg.plan_cluster_changes(CURRENT, {'node_count': 1, 'cluster_template_id': 't2',
                                             'nodes_to_remove': ['a', 'b']})
    assert plan['resize'] == 1 and plan['upgrade'] == 't2' and plan['nodes_to_remove'] == ['a', 'b']


def test_plan_drops_removals_when_growing():
    plan = mg.plan_cluster_changes(CURRENT, {'node_count': 5, 'nodes_to_remove': ['a']})
    assert plan['resize'] == 5 and plan['nodes_to_remove'] == []


def test_plan_rejects_what_magnum_cannot_change():
    plan = mg.plan_cluster_changes(CURRENT, {
        'master_count': 3, 'flavor_id': ['bm.gpu', 'f-gpu'], 'keypair': ['other'], 'floating_ip_enabled': True,
        'master_lb_enabled': True, 'docker_volume_size': 100, 'labels': {'gpu': 'false'}, 'merge_labels': True,
        'fixed_network': ['net-2']})
    fields = dict((r['field'], r) for r in plan['rejected'])
    assert set(fields) == {'master_count', 'flavor_id', 'keypair', 'floating_ip_enabled', 'docker_volume_size',
                           'labels', 'fixed_network'}
    assert fields['flavor_id']['wanted'] == 'bm.gpu' and fields['flavor_id']['current'] == 'm1.small'
    assert fields['labels']['current'] == {'gpu': 'true'} and fields['labels']['wanted'] == {'gpu': 'false'}
    text = mg.describe_rejections('cluster', 'hpc', plan['rejected'])
    assert 'master_count' in text and 'Nothing was changed' in text


def test_plan_nodegroup():
    current = {'node_count': 2, 'min_node_count': 0, 'max_node_count': None, 'role': 'worker',
               'flavor_id': 'f-gpu', 'image_id': 'img', 'labels': {'gpu': 'true'}, 'docker_volume_size': None}
    plan = mg.plan_nodegroup_changes(current, {'node_count': 1, 'max_node_count': 8, 'nodes_to_remove': ['x'],
                                               'flavor_id': ['bm.gpu', 'f-gpu'], 'labels': {'gpu': True and 'true'},
                                               'merge_labels': True})
    assert plan['resize'] == 1 and plan['nodes_to_remove'] == ['x']
    assert plan['patch'] == [{'op': 'replace', 'path': '/max_node_count', 'value': 8}]
    assert plan['rejected'] == []
    plan = mg.plan_nodegroup_changes(current, {'role': 'gpu', 'image_id': ['other'], 'docker_volume_size': 10})
    assert {r['field'] for r in plan['rejected']} == {'role', 'image_id'}


@pytest.mark.parametrize('args, ok', [
    ((3, 0, 5), True), ((0, 0, None), True), ((6, 0, 5), False), ((1, 2, None), False),
    ((None, 3, 2), False), ((-1, None, None), False), ((None, None, 0), False),
])
def test_check_counts(args, ok):
    if ok:
        mg.check_counts(*args)
    else:
        with pytest.raises(mg.MagnumInputError):
            mg.check_counts(*args)


def test_field_reads_dicts_and_resources():
    from magnumclient.common.base import Resource

    class Manager(object):
        def get(self, ident):
            raise AssertionError('a field read must not fetch the resource')

    # What python-magnumclient's create() returns: a resource with the UUID only, not loaded.
    created = Resource(Manager(), {'uuid': 'u1'}, loaded=False)
    assert mg.field(created, 'uuid') == 'u1' and mg.field(created, 'status') is None
    assert mg.field({'a': 1}, 'a') == 1 and mg.field(None, 'a', 'd') == 'd'
