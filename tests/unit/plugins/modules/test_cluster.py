# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from magnumclient import exceptions as magnum_exc

from ansible_collections.hpcops.coe.plugins.modules import cluster as cluster_module
from ansible_collections.hpcops.coe.tests.unit.plugins.modules.test_cluster_fakes import (  # pylint: disable=unused-import
    cloud,
    run_failing,
    run_module,
)

main = cluster_module.main


def seeded(cloud, **fields):
    tpl = cloud.add_template('k8s-v1', labels={'kube_tag': 'v1.30.4', 'auto_healing_enabled': 'false'})
    defaults = dict(status='CREATE_COMPLETE', api_address='https://10.0.0.5:6443', node_count=2,
                    flavor_id='f-small', master_flavor_id='f-small', labels={'kube_tag': 'v1.30.4', 'gpu': 'true'})
    defaults.update(fields)
    c = cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], **defaults)
    return tpl, c


# ---------------------------------------------------------------- create

def test_create_waits_for_create_complete_and_sends_resolved_ids(cloud):
    tpl = cloud.add_template('k8s-v1', labels={'kube_tag': 'v1.30.4'})
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1', flavor='bm.gpu', master_flavor='m1.large',
                                keypair='ops', node_count=3, master_count=1, create_timeout=90, timeout=7200,
                                labels={'gpu': True, 'count': 2}))
    assert res['changed'] is True
    body = [a for op, k, a in cloud.calls if (op, k) == ('create', 'cluster')][0]
    assert body['cluster_template_id'] == tpl['uuid']
    assert body['flavor_id'] == 'f-gpu' and body['master_flavor_id'] == 'f-large'
    assert body['labels'] == {'gpu': 'true', 'count': '2'}
    assert body['merge_labels'] is True
    # create_timeout is Magnum's, in minutes; the module's timeout (seconds) is never sent.
    assert body['create_timeout'] == 90
    assert 7200 not in body.values()
    c = res['cluster']
    assert c['status'] == 'CREATE_COMPLETE'
    assert c['api_address'] == 'https://10.0.0.5:6443'
    assert c['driver_kind'] == 'heat'
    assert c['labels'] == {'kube_tag': 'v1.30.4', 'gpu': 'true', 'count': '2'}
    assert res['waited'][0]['transitions'][-1]['status'] == 'CREATE_COMPLETE'


def test_create_without_wait_returns_in_progress(cloud):
    cloud.add_template('k8s-v1')
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1', wait=False))
    assert res['changed'] and res['cluster']['status'] == 'CREATE_IN_PROGRESS'
    assert cloud.clock.sleeps == []


def test_create_waits_while_magnum_has_not_stored_the_new_cluster(cloud):
    cloud.add_template('k8s-v1')
    cloud.new_cluster_hidden_reads = 3
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1', timeout=600))
    assert res['changed'] and res['cluster']['status'] == 'CREATE_COMPLETE'
    assert len([1 for op, k, a in cloud.calls if (op, k) == ('create', 'cluster')]) == 1
    assert len(cloud.clock.sleeps) >= 3


def test_create_fails_when_the_new_cluster_never_appears(cloud):
    cloud.add_template('k8s-v1')
    cloud.new_cluster_hidden_reads = 10 ** 6
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v1', timeout=600))
    assert 'disappeared while it was being created' in res['msg']
    # bounded: the 404 is tolerated for a minute, not for the whole timeout
    assert 60 <= sum(cloud.clock.sleeps) < 120


def test_create_needs_a_template(cloud):
    res = run_failing(main, dict(name='hpc'))
    assert 'cluster_template is needed' in res['msg']
    assert cloud.changes() == []


def test_unknown_template_lists_valid_ones(cloud):
    cloud.add_template('k8s-v1')
    cloud.add_template('k8s-v2')
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v9'))
    assert "'k8s-v9'" in res['msg'] and 'k8s-v1, k8s-v2' in res['msg']
    assert cloud.changes() == []


def test_ambiguous_template_name_is_refused(cloud):
    cloud.add_template('k8s')
    cloud.add_template('k8s')
    res = run_failing(main, dict(name='hpc', cluster_template='k8s'))
    assert 'are named' in res['msg'] and 'uuid' in res['msg']
    assert cloud.changes() == []


def test_unknown_flavor_lists_valid_ones_before_any_change(cloud):
    cloud.add_template('k8s-v1')
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v1', flavor='m1.huge'))
    assert "flavor 'm1.huge' given in flavor does not exist" in res['msg']
    assert 'bm.gpu, m1.large, m1.small' in res['msg']
    assert cloud.changes() == []


@pytest.mark.parametrize('args, text', [
    (dict(name='1bad'), 'start with a letter'),
    (dict(name='bad name'), 'start with a letter'),
    (dict(name='x' * 243), 'at most 242'),
    (dict(name='hpc', master_count=0), 'master_count must be 1 or more'),
    (dict(name='hpc', node_count=-1), 'node_count must be 0 or more'),
    (dict(name='hpc', create_timeout=0), 'create_timeout is in minutes'),
    (dict(name='hpc', docker_volume_size=0), 'docker_volume_size must be 1'),
    (dict(name='hpc', max_batch_size=0), 'max_batch_size must be 1'),
    (dict(name='hpc', nodes_to_remove=['a']), 'nodes_to_remove needs node_count'),
    (dict(name='hpc', node_count=1, nodes_to_remove=['a', 'a']), 'more than once'),
    (dict(name='hpc', labels={'nets': ['a', 'b']}), 'list value'),
    (dict(name='hpc', labels={'x': {'y': 1}}), 'mapping value'),
])
def test_bad_input_fails_before_any_change(cloud, args, text):
    cloud.add_template('k8s-v1')
    args.setdefault('cluster_template', 'k8s-v1')
    res = run_failing(main, args)
    assert text in res['msg']
    assert cloud.changes() == []


def test_unknown_uuid_is_not_created_as_a_name(cloud):
    cloud.add_template('k8s-v1')
    res = run_failing(main, dict(name='6b1a0e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f', cluster_template='k8s-v1'))
    assert 'no cluster has the UUID' in res['msg']
    assert cloud.changes() == []


def test_zero_nodes_needs_microversion_1_10(cloud):
    cloud.add_template('k8s-v1')
    cloud.max_version = (1, 9)
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v1', node_count=0))
    assert '1.10' in res['msg'] and '1.9' in res['msg'] and 'Nothing was changed' in res['msg']
    assert cloud.changes() == []


def test_check_mode_create_reports_without_creating(cloud):
    cloud.add_template('k8s-v1', labels={'kube_tag': 'v1.30.4'})
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1', labels={'gpu': True}), check=True, diff=True)
    assert res['changed'] is True and res['plan']['action'] == 'create'
    assert res['diff']['before'] == {}
    assert res['diff']['after']['labels'] == {'kube_tag': 'v1.30.4', 'gpu': 'true'}
    assert cloud.changes() == []


def test_merge_labels_false_replaces_template_labels_in_diff(cloud):
    cloud.add_template('k8s-v1', labels={'kube_tag': 'v1.30.4'})
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1', labels={'gpu': True}, merge_labels=False),
                     check=True, diff=True)
    assert res['diff']['after']['labels'] == {'gpu': 'true'}


# ---------------------------------------------------------------- failures while creating

def test_create_failed_is_detected_reported_and_cleaned_up(cloud):
    cloud.add_template('k8s-v1')
    orig = cloud.add_cluster

    def add_failing(**body):
        return orig(script=[{'status': 'CREATE_FAILED', 'status_reason': 'Quota exceeded for instances',
                             'faults': {'kube_masters': 'Quota exceeded'}}], **body)
    cloud.add_cluster = add_failing
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v1'))
    assert 'failed to create' in res['msg'] and 'Quota exceeded for instances' in res['msg']
    assert res['status_reason'] == 'Quota exceeded for instances'
    assert res['faults'] == {'kube_masters': 'Quota exceeded'}
    assert 'was deleted' in res['msg']
    assert ('delete', 'cluster') in cloud.ops('cluster')
    assert cloud.clusters_db == []


def test_create_failed_kept_on_request(cloud):
    cloud.add_template('k8s-v1')
    orig = cloud.add_cluster
    cloud.add_cluster = lambda **b: orig(script=[{'status': 'CREATE_FAILED', 'status_reason': 'boom'}], **b)
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v1', on_create_failure='keep'))
    assert 'kept' in res['msg']
    assert ('delete', 'cluster') not in cloud.ops('cluster')


def test_create_timeout_fails_without_deleting(cloud):
    cloud.add_template('k8s-v1')
    orig = cloud.add_cluster
    cloud.add_cluster = lambda **b: orig(script=[{'status': 'CREATE_IN_PROGRESS'}] * 1000, **b)
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v1', timeout=120))
    assert 'Timed out' in res['msg'] and 'CREATE_IN_PROGRESS' in res['msg']
    assert ('delete', 'cluster') not in cloud.ops('cluster')
    # The wait stopped at the module's deadline, with growing intervals.
    assert sum(cloud.clock.sleeps) <= 121
    assert cloud.clock.sleeps[0] < cloud.clock.sleeps[-2]


def test_existing_create_failed_cluster_fails_with_instructions(cloud):
    seeded(cloud, status='CREATE_FAILED', status_reason='No valid host')
    res = run_failing(main, dict(name='hpc'))
    assert 'CREATE_FAILED' in res['msg'] and 'No valid host' in res['msg'] and 'state=absent' in res['msg']
    assert cloud.changes() == []


# ---------------------------------------------------------------- idempotency

def test_rerun_is_unchanged_with_int_and_bool_labels_and_flavor_names(cloud):
    seeded(cloud)
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1', node_count=2, flavor='m1.small',
                                labels={'gpu': True}))
    assert res['changed'] is False
    assert res['plan']['action'] == 'none'
    assert cloud.changes() == []


def test_merge_labels_false_compares_whole_label_set(cloud):
    seeded(cloud)
    res = run_failing(main, dict(name='hpc', labels={'gpu': True}, merge_labels=False))
    assert 'labels' in res['msg'] and 'kube_tag' in res['msg']


# ---------------------------------------------------------------- rejected changes

def test_immutable_differences_are_rejected_before_any_change(cloud):
    seeded(cloud)
    res = run_failing(main, dict(name='hpc', node_count=5, flavor='bm.gpu', master_count=3, keypair='other'))
    for name in ('flavor_id', 'master_count', 'keypair'):
        assert name in res['msg']
    assert 'Nothing was changed' in res['msg']
    assert {r['field'] for r in res['plan']['rejected']} == {'flavor_id', 'master_count', 'keypair'}
    assert cloud.changes() == []


# ---------------------------------------------------------------- resize

def test_resize_up_uses_resize_action_and_waits(cloud):
    _tpl, c = seeded(cloud)
    res = run_module(main, dict(name='hpc', node_count=4), diff=True)
    assert res['changed'] is True
    resize = [a for op, k, a in cloud.calls if op == 'resize'][0]
    assert resize['node_count'] == 4 and resize['uuid'] == c['uuid']
    assert res['cluster']['node_count'] == 4 and res['cluster']['status'] == 'UPDATE_COMPLETE'
    assert res['diff']['before']['node_count'] == 2 and res['diff']['after']['node_count'] == 4


def test_node_count_means_the_default_nodegroup(cloud):
    # Magnum's cluster node_count adds the GPU group's node: 2 + 1.
    _tpl, c = seeded(cloud)
    cloud.add_nodegroup(c['uuid'], 'gpu', node_count=1)
    res = run_module(main, dict(name='hpc', node_count=2))
    assert res['changed'] is False and cloud.changes() == []
    res = run_module(main, dict(name='hpc', node_count=3), diff=True)
    assert res['changed'] is True and res['cluster']['node_count'] == 4
    assert res['diff']['before']['node_count'] == 2 and res['diff']['after']['node_count'] == 3
    assert [a for op, k, a in cloud.calls if op == 'resize'][0]['node_count'] == 3


def test_resize_wait_ends_when_update_completes_even_if_counts_moved(cloud):
    _tpl, c = seeded(cloud)
    # Someone grew another group meanwhile: the total is not what this run expects.
    cloud.resize_script = [{'status': 'UPDATE_IN_PROGRESS'}, {'status': 'UPDATE_COMPLETE', 'node_count': 7}]
    res = run_module(main, dict(name='hpc', node_count=3, timeout=600))
    assert res['changed'] is True and sum(cloud.clock.sleeps) < 60


def test_resize_down_removes_chosen_nodes(cloud, monkeypatch):
    from ansible_collections.hpcops.coe.plugins.module_utils import discovery
    seeded(cloud, node_count=4)
    members = [{'id': 'srv-%s' % x, 'name': 'hpc-node-%s' % x, 'nodegroup': 'default-worker'} for x in 'abcd']
    monkeypatch.setattr(discovery, 'discover_cluster_nodes', lambda conn, ref: members)
    # By ID and by name: Magnum gets server IDs.
    res = run_module(main, dict(name='hpc', node_count=2, nodes_to_remove=['srv-a', 'hpc-node-b']))
    resize = [a for op, k, a in cloud.calls if op == 'resize'][0]
    assert resize['nodes_to_remove'] == ['srv-a', 'srv-b']
    assert res['plan']['nodes_to_remove'] == ['srv-a', 'srv-b']


def test_nodes_to_remove_ignored_when_not_shrinking(cloud):
    seeded(cloud, node_count=2)
    res = run_module(main, dict(name='hpc', node_count=2, nodes_to_remove=['srv-a']))
    assert res['changed'] is False and cloud.changes() == []


def test_nodes_to_remove_cannot_exceed_the_shrink(cloud):
    seeded(cloud, node_count=4)
    res = run_failing(main, dict(name='hpc', node_count=3, nodes_to_remove=['a', 'b']))
    assert 'removes only 1' in res['msg']
    assert cloud.changes() == []


def test_resize_outside_default_nodegroup_limits_is_refused(cloud):
    _tpl, c = seeded(cloud)
    cloud.nodegroup(c['uuid'], 'default-worker')['max_node_count'] = 3
    res = run_failing(main, dict(name='hpc', node_count=5))
    assert 'max_node_count 3' in res['msg'] and 'node_count' in res['msg']
    assert cloud.changes() == []


def test_resize_on_old_magnum_patches_node_count(cloud):
    seeded(cloud)
    cloud.max_version = (1, 6)
    res = run_module(main, dict(name='hpc', node_count=3))
    assert res['changed'] and ('patch', 'cluster') in cloud.ops('cluster')
    assert ('resize', 'cluster') not in cloud.ops('cluster')


def test_resize_retries_conflicts(cloud):
    seeded(cloud)
    cloud.fail_next('resize', 'cluster', magnum_exc.Conflict('Cluster hpc is busy'),
                    magnum_exc.Conflict('Cluster hpc is busy'))
    res = run_module(main, dict(name='hpc', node_count=3))
    assert res['changed'] is True
    # Two refused attempts, then the one that went through.
    assert cloud.ops('cluster').count(('resize', 'cluster')) == 3
    assert len(cloud.clock.sleeps) >= 2


def test_resize_conflict_that_never_clears_fails_clearly(cloud):
    seeded(cloud)
    cloud.fail_next('resize', 'cluster', *[magnum_exc.Conflict('Cluster hpc is busy')] * 20)
    res = run_failing(main, dict(name='hpc', node_count=3))
    assert res['msg'].startswith("Cannot resize cluster 'hpc'") and 'HTTP 409' in res['msg']


def test_busy_refusal_waits_for_the_other_operation_then_retries(cloud):
    _tpl, c = seeded(cloud)
    orig = cloud.clusters.resize
    refused = []

    def refuse_once(*a, **k):
        if not refused:
            # Another run started an upgrade after our status check.
            refused.append(True)
            c.update(status='UPDATE_IN_PROGRESS',
                     _script=[{'status': 'UPDATE_IN_PROGRESS'}, {'status': 'UPDATE_COMPLETE'}])
            raise magnum_exc.BadRequest(message='Resizing a cluster when status is "UPDATE_IN_PROGRESS" is not '
                                                'supported.')
        return orig(*a, **k)
    cloud.clusters.resize = refuse_once
    res = run_module(main, dict(name='hpc', node_count=3))
    assert res['changed'] is True and res['cluster']['node_count'] == 3
    assert any('resizing it' in w['what'] for w in res['waited'])


def test_permanent_conflict_is_not_retried(cloud):
    seeded(cloud)
    cloud.add_template('k8s-v2')
    cloud.fail_next('upgrade', 'cluster', magnum_exc.Conflict(
        message='Cluster Template is not valid for upgrade: Nodegroup gpu can be upgraded only to match'))
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v2'))
    assert 'not valid for upgrade' in res['msg'] and cloud.clock.sleeps == []


def test_update_failed_during_resize_reports_reason(cloud):
    seeded(cloud)
    cloud.resize_script = [{'status': 'UPDATE_FAILED', 'status_reason': 'No valid host was found'}]
    res = run_failing(main, dict(name='hpc', node_count=3))
    assert 'No valid host was found' in res['msg'] and res['status_reason'] == 'No valid host was found'


def test_check_mode_resize_changes_nothing(cloud):
    seeded(cloud)
    res = run_module(main, dict(name='hpc', node_count=6), check=True, diff=True)
    assert res['changed'] is True and res['plan']['resize'] == 6
    assert res['diff']['after']['node_count'] == 6
    assert cloud.changes() == []


# ---------------------------------------------------------------- upgrade

def test_upgrade_to_another_template(cloud):
    seeded(cloud)
    new = cloud.add_template('k8s-v2')
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v2', max_batch_size=2))
    up = [a for op, k, a in cloud.calls if op == 'upgrade'][0]
    assert up['template'] == new['uuid'] and up['max_batch_size'] == 2
    assert res['cluster']['cluster_template_id'] == new['uuid']
    assert res['cluster']['cluster_template_name'] == 'k8s-v2'


def test_upgrade_needs_1_8_and_nothing_changes_otherwise(cloud):
    seeded(cloud)
    cloud.add_template('k8s-v2')
    cloud.max_version = (1, 7)
    res = run_failing(main, dict(name='hpc', cluster_template='k8s-v2', node_count=3))
    assert '1.8' in res['msg'] and 'Nothing was changed' in res['msg']
    assert cloud.changes() == []


@pytest.mark.parametrize('count, order', [(1, ['resize', 'upgrade']), (4, ['upgrade', 'resize'])])
def test_shrink_before_upgrade_grow_after(cloud, count, order):
    seeded(cloud)
    cloud.add_template('k8s-v2')
    run_module(main, dict(name='hpc', cluster_template='k8s-v2', node_count=count, wait=False))
    assert [op for op, k, a in cloud.calls if op in ('resize', 'upgrade')] == order


# ---------------------------------------------------------------- concurrency

def test_second_run_waits_for_create_in_progress_instead_of_creating(cloud):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'],
                      script=[{'status': 'CREATE_IN_PROGRESS'}] * 3 + [{'status': 'CREATE_COMPLETE',
                                                                       'api_address': 'https://1.2.3.4:6443'}])
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1'))
    assert res['changed'] is False
    assert res['cluster']['status'] == 'CREATE_COMPLETE'
    assert ('create', 'cluster') not in cloud.ops('cluster')


def test_busy_cluster_without_wait_and_no_change_returns_at_once(cloud):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], script=[{'status': 'CREATE_IN_PROGRESS'}] * 50)
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1', wait=False))
    assert res['changed'] is False and cloud.clock.sleeps == []


def test_busy_cluster_settles_before_resize(cloud):
    _tpl, c = seeded(cloud, status='UPDATE_IN_PROGRESS')
    c['_script'] = [{'status': 'UPDATE_IN_PROGRESS'}] * 3 + [{'status': 'UPDATE_COMPLETE'}]
    res = run_module(main, dict(name='hpc', node_count=3))
    assert res['changed'] is True
    settle, resize = res['waited']
    assert 'UPDATE_IN_PROGRESS' in settle['what']
    assert [t['status'] for t in settle['transitions']] == ['UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE']
    # The resize was sent only after the earlier update had finished.
    calls = [op for op, k, a in cloud.calls if k == 'cluster']
    assert calls.index('resize') > len(calls) - 4


def test_same_name_twice_is_refused(cloud):
    tpl = cloud.add_template('k8s-v1')
    a = cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    b = cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    res = run_failing(main, dict(name='hpc', node_count=3))
    assert '2 clusters are named' in res['msg'] and a['uuid'] in res['msg'] and b['uuid'] in res['msg']
    assert cloud.changes() == []


def test_uuid_addresses_one_of_same_named_clusters(cloud):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    b = cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    res = run_module(main, dict(name=b['uuid']))
    assert res['changed'] is False and res['cluster']['id'] == b['uuid']


def test_concurrent_create_keeps_the_older_cluster(cloud):
    tpl = cloud.add_template('k8s-v1')
    orig = cloud.add_cluster
    older = {}

    def racing_add(**body):
        # Another run's POST landed first, between our lookup and our create.
        if not older:
            older['c'] = orig(status='CREATE_IN_PROGRESS', **body)
        return orig(**body)
    cloud.add_cluster = racing_add
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v1'))
    assert res['changed'] is False
    assert res['cluster']['id'] == older['c']['uuid']
    assert [a for op, k, a in cloud.calls if (op, k) == ('delete', 'cluster')]
    assert [c['uuid'] for c in cloud.clusters_db if c['status'] != 'DELETE_IN_PROGRESS'] == [older['c']['uuid']]
    assert tpl['uuid'] == res['cluster']['cluster_template_id']


# ---------------------------------------------------------------- absent

def test_delete_waits_until_gone_and_rerun_is_unchanged(cloud):
    seeded(cloud)
    res = run_module(main, dict(name='hpc', state='absent'), diff=True)
    assert res['changed'] is True and res['diff']['after'] == {}
    assert cloud.clusters_db == []
    res = run_module(main, dict(name='hpc', state='absent'))
    assert res['changed'] is False


def test_delete_in_progress_by_someone_else_is_awaited(cloud):
    _tpl, c = seeded(cloud, status='DELETE_IN_PROGRESS')
    c['_script'] = [{'status': 'DELETE_IN_PROGRESS'}, {'_gone': True}]
    res = run_module(main, dict(name='hpc', state='absent'))
    assert res['changed'] is False
    assert ('delete', 'cluster') not in cloud.ops('cluster')
    assert cloud.clusters_db == []


def test_delete_failed_reports_reason(cloud):
    _tpl, c = seeded(cloud)
    orig = cloud.clusters.delete

    def failing_delete(ident):
        orig(ident)
        cloud.cluster(ident)['_script'] = [{'status': 'DELETE_FAILED', 'status_reason': 'stack delete failed'}]
    cloud.clusters.delete = failing_delete
    res = run_failing(main, dict(name='hpc', state='absent'))
    assert 'stack delete failed' in res['msg'] and res['status_reason'] == 'stack delete failed'


def test_check_mode_delete(cloud):
    seeded(cloud)
    res = run_module(main, dict(name='hpc', state='absent'), check=True)
    assert res['changed'] is True and cloud.changes() == []


def test_delete_of_a_cluster_already_deleting_is_no_change_and_awaited(cloud):
    # Found by UUID (name lookups skip deleting clusters): someone else's delete is running.
    _tpl, c = seeded(cloud, status='DELETE_IN_PROGRESS')
    c['_script'] = [{'status': 'DELETE_IN_PROGRESS'}] * 3 + [{'_gone': True}]
    res = run_module(main, dict(name=c['uuid'], state='absent'), check=True)
    assert res['changed'] is False and res['plan']['action'] == 'none'
    assert cloud.clusters_db and cloud.clock.sleeps == []
    res = run_module(main, dict(name=c['uuid'], state='absent'))
    assert res['changed'] is False
    assert ('delete', 'cluster') not in cloud.ops('cluster')
    assert cloud.clusters_db == [] and [t['status'] for t in res['waited'][0]['transitions']] == [
        'DELETE_IN_PROGRESS', 'gone']


def test_concurrent_create_keeper_that_fails_is_not_deleted(cloud):
    tpl = cloud.add_template('k8s-v1')
    orig = cloud.add_cluster
    older = {}

    def racing_add(**body):
        # Another run's cluster landed first and then fails; this run waits on it.
        if not older:
            older['c'] = orig(script=[{'status': 'CREATE_IN_PROGRESS'},
                                      {'status': 'CREATE_FAILED', 'status_reason': 'Quota exceeded'}], **body)
        return orig(**body)
    cloud.add_cluster = racing_add
    res = run_failing(main, dict(name='hpc', cluster_template=tpl['name']))
    assert 'failed to create' in res['msg'] and 'Quota exceeded' in res['msg']
    assert 'did not delete it' in res['msg'] and 'was deleted' not in res['msg']
    deleted = [a for op, k, a in cloud.calls if (op, k) == ('delete', 'cluster')]
    # Only this run's duplicate went; the other run's failed cluster stays for it to handle.
    assert older['c']['uuid'] not in deleted and len(deleted) == 1
    assert cloud.cluster(older['c']['uuid'])['status'] == 'CREATE_FAILED'


def test_resize_wait_ignores_the_old_complete_that_shows_the_new_count(cloud):
    _tpl, c = seeded(cloud)
    # Magnum's conductor stores the new count before it marks the cluster busy.
    cloud.resize_script = [{'status': 'CREATE_COMPLETE', 'node_count': 3, 'updated_at': c['updated_at']},
                           {'status': 'UPDATE_IN_PROGRESS'}, {'status': 'UPDATE_COMPLETE'}]
    res = run_module(main, dict(name='hpc', node_count=3))
    assert res['cluster']['status'] == 'UPDATE_COMPLETE'
    assert [t['status'] for t in res['waited'][-1]['transitions']] == [
        'CREATE_COMPLETE', 'UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE']


def test_resize_that_ran_between_two_polls_is_done_by_its_updated_at(cloud):
    _tpl, c = seeded(cloud, updated_at='2026-01-01T10:00:00+00:00')
    # Never seen busy: only updated_at shows that the resize ran.
    cloud.resize_script = [{'status': 'CREATE_COMPLETE', 'node_count': 3, 'updated_at': c['updated_at']},
                           {'status': 'UPDATE_COMPLETE', 'updated_at': '2026-01-01T10:05:00+00:00'}]
    res = run_module(main, dict(name='hpc', node_count=3, timeout=600))
    assert res['cluster']['status'] == 'UPDATE_COMPLETE' and sum(cloud.clock.sleeps) < 60


def test_upgrade_wait_ignores_the_old_complete(cloud):
    _tpl, c = seeded(cloud)
    new = cloud.add_template('k8s-v2')
    orig = cloud.clusters.upgrade

    def slow_conductor(uuid, template, **kwargs):
        orig(uuid, template, **kwargs)
        c['_script'] = [{'status': 'CREATE_COMPLETE', 'cluster_template_id': template, 'updated_at': None},
                        {'status': 'UPDATE_IN_PROGRESS'}, {'status': 'UPDATE_COMPLETE'}]
    cloud.clusters.upgrade = slow_conductor
    res = run_module(main, dict(name='hpc', cluster_template='k8s-v2'))
    assert res['cluster']['status'] == 'UPDATE_COMPLETE' and res['cluster']['cluster_template_id'] == new['uuid']
