# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.cluster_nodegroup run by ansible-playbook against the simulated cloud."""

import pytest

from test_magnum_support import (
    BUILD_OUTLASTS_NEXT_RUN,
    cluster_state,
    magnum_writes,
    one,
    play,
    route_count,
    task,
)

GPU = {'cluster': 'hpc-heat', 'name': 'gpu-a100', 'flavor': 'bm.gpu', 'node_count': 1, 'min_node_count': 0,
       'max_node_count': 2, 'labels': {'gpu': True, 'gpu_count': 8}}


def groups(sim_cloud, cluster='hpc-heat'):
    return dict((g['name'], g) for g in cluster_state(sim_cloud.state(), cluster)['nodegroups'])


@pytest.mark.realservices
def test_add_resize_and_remove_a_gpu_nodegroup(sim_cloud, sim_env, playbook):
    tasks = [
        task('cluster_nodegroup', GPU, name='Add'),
        task('cluster_nodegroup', GPU, name='Add again'),
        task('cluster_nodegroup', dict(GPU, node_count=2), name='Grow'),
        task('cluster_nodegroup', dict(GPU, node_count=3, max_node_count=6), name='Grow past the old max'),
        task('cluster_nodegroup', dict(GPU, node_count=0, max_node_count=6), name='Empty it'),
        task('cluster_info', {'name': 'hpc-heat'}, name='Read'),
        task('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu-a100', 'state': 'absent'}, name='Remove'),
        task('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu-a100', 'state': 'absent'},
             name='Remove again'),
    ]
    run = playbook(play(tasks), env=sim_env, diff=True).assert_ok()

    added = run.task('Add')
    assert added['changed'] is True
    ng = added['nodegroup']
    assert ng['status'] == 'CREATE_COMPLETE' and ng['role'] == 'worker' and ng['node_count'] == 1
    assert ng['max_node_count'] == 2 and ng['labels']['gpu'] == 'true' and ng['labels']['gpu_count'] == '8'
    assert added['diff']['before'] == {}
    assert run.task('Add again')['changed'] is False

    grown = run.task('Grow')
    assert grown['changed'] is True and grown['nodegroup']['node_count'] == 2
    past = run.task('Grow past the old max')
    assert past['nodegroup']['node_count'] == 3 and past['nodegroup']['max_node_count'] == 6
    empty = run.task('Empty it')
    assert empty['nodegroup']['node_count'] == 0

    info = run.task('Read')['clusters'][0]
    gpu = [g for g in info['nodegroups'] if g['name'] == 'gpu-a100'][0]
    assert gpu['node_count'] == 0 and gpu['max_node_count'] == 6

    assert run.task('Remove')['changed'] is True
    assert run.task('Remove again')['changed'] is False
    assert 'gpu-a100' not in groups(sim_cloud)


def test_limits_are_widened_before_and_narrowed_after_a_resize(sim_cloud, sim_env, playbook):
    # The scenario's 'gpu' group: 1 node, min 0, max 4; min 3 is only valid once it has 3 nodes.
    run = playbook(one('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu', 'node_count': 3,
                                             'min_node_count': 3, 'max_node_count': 8}), env=sim_env).assert_ok()
    ng = run.task('step')['nodegroup']
    assert (ng['node_count'], ng['min_node_count'], ng['max_node_count']) == (3, 3, 8)
    requests = sim_cloud.requests()
    assert route_count(requests, 'PATCH', '/nodegroups/') == 2
    assert route_count(requests, 'POST', '/actions/resize') == 1


def test_resize_failure_reports_magnums_reason(sim_cloud, sim_env, playbook):
    # Four GPU bare-metal nodes exist; the 'gpu' group holds one of them.
    result = playbook(one('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu', 'node_count': 5,
                                                'max_node_count': 8}, ignore_errors=True), env=sim_env).task('step')
    assert result['failed'] and "Nodegroup 'gpu' resize failed" in result['msg']
    assert 'No valid host was found' in result['status_reason']
    assert result['nodegroup']['status'] == 'UPDATE_FAILED'


def test_default_groups_and_master_role_are_refused(sim_cloud, sim_env, playbook):
    tasks = [
        task('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'default-worker', 'state': 'absent'},
             name='Delete default worker', ignore_errors=True),
        task('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'default-master', 'state': 'absent'},
             name='Delete default master', ignore_errors=True),
        task('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'ctl2', 'role': 'master'},
             name='Add a master group', ignore_errors=True),
    ]
    run = playbook(play(tasks), env=sim_env)
    for name in ('Delete default worker', 'Delete default master'):
        result = run.task(name)
        assert result['failed'] and 'only with the cluster' in result['msg'], result
    assert "role 'master' is not allowed" in run.task('Add a master group')['msg']
    assert magnum_writes(sim_cloud.requests()) == {}


def test_default_worker_limits_can_be_managed(sim_cloud, sim_env, playbook):
    run = playbook(one('cluster_nodegroup', {'cluster': 'hpc-capi', 'name': 'default-worker', 'min_node_count': 1,
                                             'max_node_count': 5}), env=sim_env).assert_ok()
    ng = run.task('step')['nodegroup']
    assert ng['is_default'] is True and (ng['min_node_count'], ng['max_node_count']) == (1, 5)


def test_nodegroup_on_a_cluster_still_building_waits_for_it(sim_cloud, sim_env, playbook):
    # The nodegroup task starts right after the create returns, well within the build time.
    sim_cloud.set_timings(cluster_create=BUILD_OUTLASTS_NEXT_RUN)
    run = playbook(play([task('cluster', {'name': 'young', 'cluster_template': 'k8s-capi-v1.30', 'wait': False},
                              'create'),
                         task('cluster_nodegroup', {'cluster': 'young', 'name': 'extra', 'node_count': 1})]),
                   env=sim_env).assert_ok()
    assert run.task('create')['cluster']['status'] == 'CREATE_IN_PROGRESS'
    result = run.task('step')
    assert result['changed'] is True and result['nodegroup']['status'] == 'CREATE_COMPLETE'
    assert any('ready for' in w['what'] for w in result['waited'])
    # Never sent while Magnum would answer 409 (no API address yet).
    assert route_count(sim_cloud.requests(), 'POST', '/nodegroups') == 1


def test_check_mode_changes_nothing(sim_cloud, sim_env, playbook):
    run = playbook(one('cluster_nodegroup', GPU), env=sim_env, check=True, diff=True).assert_ok()
    result = run.task('step')
    assert result['changed'] is True and result['diff']['after']['flavor_id']
    assert 'gpu-a100' not in groups(sim_cloud) and magnum_writes(sim_cloud.requests()) == {}
