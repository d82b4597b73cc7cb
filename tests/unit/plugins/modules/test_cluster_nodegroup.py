# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from magnumclient import exceptions as magnum_exc

from ansible_collections.hpcops.coe.plugins.modules import cluster_nodegroup
from ansible_collections.hpcops.coe.tests.unit.plugins.modules.test_cluster_fakes import (  # pylint: disable=unused-import
    cloud,
    run_failing,
    run_module,
)

main = cluster_nodegroup.main


def seed(cloud, **fields):
    tpl = cloud.add_template('k8s-v1')
    fields.setdefault('status', 'CREATE_COMPLETE')
    fields.setdefault('api_address', 'https://10.0.0.5:6443')
    return cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], **fields)


GPU = dict(cluster='hpc', name='gpu', flavor='bm.gpu', node_count=2, min_node_count=0, max_node_count=8,
           labels={'gpu': True})


def test_create_gpu_group_and_rerun(cloud):
    c = seed(cloud)
    res = run_module(main, GPU, diff=True)
    assert res['changed'] is True and res['nodegroup']['status'] == 'CREATE_COMPLETE'
    body = [a for op, k, a in cloud.calls if (op, k) == ('create', 'nodegroup')][0]
    assert body['flavor_id'] == 'f-gpu' and body['role'] == 'worker' and body['labels'] == {'gpu': 'true'}
    assert body['min_node_count'] == 0 and body['max_node_count'] == 8
    assert res['cluster_id'] == c['uuid']
    res = run_module(main, GPU)
    assert res['changed'] is False
    assert [x for x in cloud.changes() if x[1] == 'nodegroup'] == [('create', 'nodegroup', body)]


def test_resize_group_within_limits(cloud):
    c = seed(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu', flavor_id='f-gpu', node_count=2, max_node_count=8, labels={'gpu': 'true'})
    res = run_module(main, dict(GPU, node_count=5))
    resize = [a for op, k, a in cloud.calls if op == 'resize'][0]
    assert resize['node_count'] == 5 and resize['nodegroup']
    assert res['nodegroup']['node_count'] == 5


def test_grow_past_max_widens_limit_first(cloud):
    c = seed(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu', flavor_id='f-gpu', node_count=2, max_node_count=3, labels={'gpu': 'true'})
    run_module(main, dict(GPU, node_count=6, max_node_count=8))
    ops = [op for op, k, a in cloud.calls if op in ('patch', 'resize')]
    assert ops == ['patch', 'resize']


def test_shrink_and_lower_max_resizes_first(cloud, monkeypatch):
    from ansible_collections.hpcops.coe.plugins.module_utils import discovery
    c = seed(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu', flavor_id='f-gpu', node_count=6, max_node_count=8, labels={'gpu': 'true'})
    members = [{'id': x, 'name': 'node-' + x, 'nodegroup': 'gpu'} for x in 'abcdef']
    monkeypatch.setattr(discovery, 'discover_cluster_nodes', lambda conn, ref: members)
    res = run_module(main, dict(GPU, node_count=2, max_node_count=4, nodes_to_remove=['a', 'node-b']))
    ops = [(op, a) for op, k, a in cloud.calls if op in ('patch', 'resize')]
    assert [o[0] for o in ops] == ['resize', 'patch']
    assert ops[0][1]['nodes_to_remove'] == ['a', 'b']
    assert res['nodegroup']['max_node_count'] == 4


def test_zero_nodes_needs_1_10(cloud):
    c = seed(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu', flavor_id='f-gpu', node_count=2, labels={'gpu': 'true'})
    cloud.max_version = (1, 9)
    res = run_failing(main, dict(GPU, node_count=0))
    assert '1.10' in res['msg']
    assert cloud.changes() == []


@pytest.mark.parametrize('args, text', [
    (dict(role='master'), "role 'master' is not allowed"),
    (dict(node_count=9), 'above its max_node_count 8'),
    (dict(min_node_count=3, node_count=2), 'below its min_node_count 3'),
    (dict(min_node_count=5, max_node_count=4, node_count=4), 'greater than max_node_count'),
    (dict(node_count=-1, min_node_count=None), 'node_count must be 0 or more'),
    (dict(name='9gpu'), 'start with a letter'),
    (dict(flavor='nope'), "flavor 'nope' given in flavor does not exist"),
    (dict(labels={'x': ['a']}), 'list value'),
    (dict(docker_volume_size=0), 'docker_volume_size must be 1'),
    (dict(nodes_to_remove=['a'], node_count=None), 'nodes_to_remove needs node_count'),
    (dict(cluster='nocluster'), "cluster 'nocluster' given in cluster does not exist"),
])
def test_bad_input_fails_before_any_change(cloud, args, text):
    seed(cloud)
    res = run_failing(main, dict(GPU, **args))
    assert text in res['msg']
    assert cloud.changes() == []


def test_fixed_fields_are_rejected(cloud):
    c = seed(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu', flavor_id='f-gpu', node_count=2, max_node_count=8, labels={'gpu': 'true'})
    res = run_failing(main, dict(GPU, flavor='m1.small', labels={'gpu': 'false'}))
    assert 'flavor_id' in res['msg'] and 'labels' in res['msg'] and 'create a new nodegroup' in res['msg']
    assert cloud.changes() == []


def test_default_groups_cannot_be_deleted(cloud):
    seed(cloud)
    for name in ('default-worker', 'default-master'):
        res = run_failing(main, dict(cluster='hpc', name=name, state='absent'))
        assert 'default nodegroup' in res['msg'] and 'only with the cluster' in res['msg']
    assert cloud.changes() == []


def test_delete_group_and_rerun(cloud):
    c = seed(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu')
    res = run_module(main, dict(cluster='hpc', name='gpu', state='absent'))
    assert res['changed'] is True
    assert [g['name'] for g in cloud.nodegroups[c['uuid']]] == ['default-master', 'default-worker']
    assert run_module(main, dict(cluster='hpc', name='gpu', state='absent'))['changed'] is False


def test_waits_for_cluster_api_address_before_creating(cloud):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'])  # CREATE_IN_PROGRESS, no address yet
    res = run_module(main, GPU)
    assert res['changed'] is True
    assert any("ready for" in w['what'] for w in res['waited'])


def test_concurrent_create_conflict_adopts_existing(cloud):
    c = seed(cloud)
    orig = cloud.nodegroups_mgr.create

    def racing(cluster_id, **body):
        cloud.add_nodegroup(c['uuid'], body['name'], flavor_id='f-gpu', node_count=2, max_node_count=8,
                            labels={'gpu': 'true'})
        raise magnum_exc.Conflict('NodeGroup gpu already exists in cluster hpc')
    cloud.nodegroups_mgr.create = racing
    res = run_module(main, GPU)
    assert res['changed'] is False and res['nodegroup']['name'] == 'gpu'
    cloud.nodegroups_mgr.create = orig


def test_nodegroups_need_1_9(cloud):
    seed(cloud)
    cloud.max_version = (1, 8)
    res = run_failing(main, GPU)
    assert '1.9' in res['msg'] and 'Nothing was changed' in res['msg']


def test_check_mode(cloud):
    seed(cloud)
    res = run_module(main, GPU, check=True, diff=True)
    assert res['changed'] is True and res['diff']['after']['flavor_id'] == 'f-gpu'
    assert cloud.changes() == []


def failing_create(cloud, reason='No valid host was found'):
    orig = cloud.nodegroups_mgr.create

    def create(cluster_id, **body):
        g = orig(cluster_id, **body)
        row = cloud.nodegroup(cloud.cluster(cluster_id)['uuid'], g['uuid'])
        row['_script'] = [{'status': 'CREATE_IN_PROGRESS'}, {'status': 'CREATE_FAILED', 'status_reason': reason}]
        return g
    cloud.nodegroups_mgr.create = create


def test_create_failed_group_is_deleted_and_the_reason_reported(cloud):
    c = seed(cloud)
    failing_create(cloud)
    res = run_failing(main, GPU)
    assert 'failed to create' in res['msg'] and 'No valid host was found' in res['msg']
    assert 'was deleted' in res['msg'] and res['nodegroup_deleted'] is True
    assert res['status_reason'] == 'No valid host was found'
    assert res['nodegroup']['status'] == 'CREATE_FAILED'
    assert ('delete', 'nodegroup') in cloud.ops('nodegroup')
    assert [g['name'] for g in cloud.nodegroups[c['uuid']]] == ['default-master', 'default-worker']


def test_create_failed_group_kept_on_request(cloud):
    c = seed(cloud)
    failing_create(cloud)
    res = run_failing(main, dict(GPU, on_create_failure='keep'))
    assert 'kept' in res['msg'] and 'No valid host was found' in res['msg'] and res['nodegroup_deleted'] is False
    assert ('delete', 'nodegroup') not in cloud.ops('nodegroup')
    assert cloud.nodegroup(c['uuid'], 'gpu')['status'] == 'CREATE_FAILED'


def test_adopted_group_that_fails_is_not_deleted(cloud):
    c = seed(cloud)

    def racing(cluster_id, **body):
        # Another run's create landed first; its group then fails.
        cloud.add_nodegroup(c['uuid'], body['name'], flavor_id='f-gpu', node_count=2, max_node_count=8,
                            labels={'gpu': 'true'}, status='CREATE_IN_PROGRESS',
                            _script=[{'status': 'CREATE_FAILED', 'status_reason': 'boom'}])
        raise magnum_exc.Conflict('NodeGroup gpu already exists in cluster hpc')
    cloud.nodegroups_mgr.create = racing
    res = run_failing(main, GPU)
    assert 'boom' in res['msg'] and 'did not delete it' in res['msg']
    assert ('delete', 'nodegroup') not in cloud.ops('nodegroup')


def test_delete_of_a_group_already_deleting_is_no_change_and_awaited(cloud):
    c = seed(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu', status='DELETE_IN_PROGRESS',
                        _script=[{'status': 'DELETE_IN_PROGRESS'}, {'_gone': True}])
    args = dict(cluster='hpc', name='gpu', state='absent')
    res = run_module(main, args, check=True)
    assert res['changed'] is False and cloud.changes() == []
    res = run_module(main, args)
    assert res['changed'] is False and cloud.changes() == []
    assert [g['name'] for g in cloud.nodegroups[c['uuid']]] == ['default-master', 'default-worker']


def test_resize_wait_ignores_the_old_complete(cloud):
    c = seed(cloud)
    g = cloud.add_nodegroup(c['uuid'], 'gpu', flavor_id='f-gpu', node_count=2, max_node_count=8,
                            labels={'gpu': 'true'}, updated_at='2026-01-01T10:00:00+00:00')
    # The group as read before Magnum's conductor took the resize up, even with the new count.
    cloud.ng_resize_script = [{'status': 'CREATE_COMPLETE', 'node_count': 5, 'updated_at': g['updated_at']},
                              {'status': 'UPDATE_IN_PROGRESS'}, {'status': 'UPDATE_COMPLETE'}]
    res = run_module(main, dict(GPU, node_count=5))
    assert res['nodegroup']['status'] == 'UPDATE_COMPLETE'
    assert [t['status'] for t in res['waited'][-1]['transitions']] == [
        'CREATE_COMPLETE', 'UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE']
