# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.cluster (and cluster_info) run by ansible-playbook against the simulated cloud."""

import os
import stat
import subprocess
import sys
import threading

import pytest
import yaml

from test_magnum_support import (
    BUILD_OUTLASTS_NEXT_RUN,
    PLAYBOOKS,
    cluster_state,
    clusters_named,
    magnum_writes,
    nodegroup_state,
    one,
    play,
    route_count,
    task,
)


@pytest.mark.realservices
def test_lifecycle_create_rerun_preview_grow_read_kubeconfig_delete(sim_cloud, sim_env, playbook, tmp_path):
    run = playbook(os.path.join(PLAYBOOKS, 'cluster_lifecycle.yml'), {'workdir': str(tmp_path)}, sim_env).assert_ok()

    created = run.task('Create')
    assert created['changed'] is True
    c = created['cluster']
    assert c['status'] == 'CREATE_COMPLETE' and c['driver_kind'] == 'heat'
    assert c['api_address'].startswith('https://') and c['master_addresses'] and c['node_addresses']
    assert c['stack_id'] and c['cluster_template_name'] == 'k8s-heat-fcos'
    # Labels reach Magnum as strings and are merged with the template's.
    assert c['labels']['monitoring_enabled'] == 'true' and c['labels']['max_pods'] == '110'
    assert c['labels']['kube_tag'] == 'v1.28.9'
    # create_timeout is Magnum's own (minutes); the module's timeout (300 s) is not sent.
    assert c['create_timeout'] == 30
    assert [t['status'] for t in created['waited'][0]['transitions']][-1] == 'CREATE_COMPLETE'

    assert run.task('Create again')['changed'] is False

    preview = run.task('Preview growth')
    assert preview['changed'] is True and preview['plan']['resize'] == 4
    assert preview['diff']['before']['node_count'] == 2 and preview['diff']['after']['node_count'] == 4

    grown = run.task('Grow')
    assert grown['changed'] is True and grown['cluster']['node_count'] == 4
    assert grown['cluster']['status'] == 'UPDATE_COMPLETE' and len(grown['cluster']['node_addresses']) == 4
    assert run.task('Grow again')['changed'] is False

    info = run.task('Read')['clusters']
    assert len(info) == 1 and info[0]['node_count'] == 4
    assert {g['name'] for g in info[0]['nodegroups']} == {'default-master', 'default-worker'}

    kc = run.task('Kubeconfig')
    assert kc['changed'] is True and kc['certificate_issued'] is True and kc['tls'] is True
    assert 'kubeconfig' not in kc
    path = tmp_path / 'kube' / 'lifecycle.yaml'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert yaml.safe_load(path.read_text())['clusters'][0]['cluster']['server'] == c['api_address']
    again = run.task('Kubeconfig again')
    assert again['changed'] is False and again['certificate_issued'] is False

    assert run.task('Delete')['changed'] is True
    assert run.task('Delete again')['changed'] is False
    assert clusters_named(sim_cloud.state(), 'lifecycle', live=False) == []


def test_shrink_removes_the_chosen_nodes(sim_cloud, sim_env, playbook):
    playbook(one('cluster', {'name': 'shrink', 'cluster_template': 'k8s-heat-fcos', 'node_count': 3}),
             env=sim_env).assert_ok()
    workers = [g for g in cluster_state(sim_cloud.state(), 'shrink')['nodegroups'] if g['name'] == 'default-worker']
    servers = workers[0]['servers']
    assert len(servers) == 3
    run = playbook(one('cluster', {'name': 'shrink', 'node_count': 1, 'nodes_to_remove': [servers[0], servers[2]]}),
                   env=sim_env).assert_ok()
    result = run.task('step')
    assert result['changed'] is True and result['cluster']['node_count'] == 1
    after = [g for g in cluster_state(sim_cloud.state(), 'shrink')['nodegroups'] if g['name'] == 'default-worker']
    assert after[0]['servers'] == [servers[1]]


def test_upgrade_capi_cluster_to_newer_template(sim_cloud, sim_env, playbook):
    args = {'name': 'hpc-capi', 'cluster_template': 'k8s-capi-v1.31', 'max_batch_size': 2}
    run = playbook(one('cluster', args), env=sim_env, diff=True).assert_ok()
    result = run.task('step')
    assert result['changed'] is True and result['plan']['upgrade']
    c = result['cluster']
    assert c['cluster_template_name'] == 'k8s-capi-v1.31' and c['status'] == 'UPDATE_COMPLETE'
    assert c['driver_kind'] == 'capi' and c['master_addresses'] == [] and c['node_addresses'] == []
    assert result['diff']['after']['cluster_template_name'] == 'k8s-capi-v1.31'
    assert route_count(sim_cloud.requests(), 'POST', '/actions/upgrade') == 1
    assert playbook(one('cluster', args), env=sim_env).assert_ok().task('step')['changed'] is False


def test_resize_and_upgrade_in_one_run(sim_cloud, sim_env, playbook):
    run = playbook(one('cluster', {'name': 'hpc-capi', 'cluster_template': 'k8s-capi-v1.31', 'node_count': 3}),
                   env=sim_env).assert_ok()
    c = run.task('step')['cluster']
    assert c['node_count'] == 3 and c['cluster_template_name'] == 'k8s-capi-v1.31'


@pytest.mark.realservices
def test_create_failed_returns_reason_and_leaves_nothing(sim_cloud, sim_env, playbook):
    sim_cloud.set_faults([{'kind': 'cluster_create_failed', 'name_regex': '^doomed$',
                           'reason': 'No valid host was found. There are not enough hosts available.'}])
    run = playbook(one('cluster', {'name': 'doomed', 'cluster_template': 'k8s-heat-fcos'}, ignore_errors=True),
                   env=sim_env)
    result = run.task('step')
    assert result['failed'] is True
    assert 'failed to create' in result['msg'] and 'No valid host was found' in result['msg']
    assert 'No valid host was found' in result['status_reason']
    assert isinstance(result['faults'], dict)
    assert 'was deleted' in result['msg']
    assert clusters_named(sim_cloud.state(), 'doomed', live=False) == []

    # The same name goes through once the cause is gone.
    sim_cloud.clear_faults()
    run = playbook(one('cluster', {'name': 'doomed', 'cluster_template': 'k8s-heat-fcos'}), env=sim_env).assert_ok()
    assert run.task('step')['cluster']['status'] == 'CREATE_COMPLETE'


def test_create_failed_kept_for_inspection_blocks_rerun(sim_cloud, sim_env, playbook):
    sim_cloud.set_faults([{'kind': 'cluster_create_failed', 'name_regex': '^kept$', 'reason': 'Quota exceeded'}])
    args = {'name': 'kept', 'cluster_template': 'k8s-heat-fcos', 'on_create_failure': 'keep'}
    result = playbook(one('cluster', args, ignore_errors=True), env=sim_env).task('step')
    assert result['failed'] and 'kept' in result['msg'] and 'Quota exceeded' in result['status_reason']
    assert cluster_state(sim_cloud.state(), 'kept')['status'] == 'CREATE_FAILED'
    result = playbook(one('cluster', args, ignore_errors=True), env=sim_env).task('step')
    assert result['failed'] and 'is CREATE_FAILED' in result['msg'] and 'state=absent' in result['msg']


def test_timeout_fails_clearly_and_keeps_the_cluster(sim_cloud, sim_env, playbook):
    sim_cloud.set_faults([{'kind': 'cluster_stuck', 'name_regex': '^slow$'}])
    result = playbook(one('cluster', {'name': 'slow', 'cluster_template': 'k8s-heat-fcos', 'timeout': 6},
                          ignore_errors=True), env=sim_env).task('step')
    assert result['failed'] and 'Timed out after' in result['msg'] and 'CREATE_IN_PROGRESS' in result['msg']
    assert result['waited'][0]['seconds'] <= 8
    assert cluster_state(sim_cloud.state(), 'slow')['status'] == 'CREATE_IN_PROGRESS'


def test_conflicts_on_a_busy_api_are_retried(sim_cloud, sim_env, playbook):
    sim_cloud.set_faults([{'kind': 'conflict_storm', 'service': 'magnum', 'path_regex': '/actions/resize$',
                           'count': 2, 'message': 'Cluster hpc-heat is locked by another operation.'}])
    run = playbook(one('cluster', {'name': 'hpc-heat', 'node_count': 3}), env=sim_env).assert_ok()
    assert run.task('step')['changed'] is True
    assert workers(sim_cloud, 'hpc-heat') == 3
    assert route_count(sim_cloud.requests(), 'POST', '/actions/resize') == 3


def test_conflicts_that_never_end_fail_with_the_reason(sim_cloud, sim_env, playbook):
    sim_cloud.set_faults([{'kind': 'conflict_storm', 'service': 'magnum', 'path_regex': '/actions/resize$',
                           'message': 'Cluster hpc-heat is locked by another operation.'}])
    result = playbook(one('cluster', {'name': 'hpc-heat', 'node_count': 3, 'timeout': 20}, ignore_errors=True),
                      env=sim_env).task('step')
    assert result['failed'] and result['msg'].startswith("Cannot resize cluster 'hpc-heat'")
    assert 'locked by another operation' in result['msg'] and 'HTTP 409' in result['msg']
    assert workers(sim_cloud, 'hpc-heat') == 2


def test_second_run_waits_for_the_first_instead_of_duplicating(sim_cloud, sim_env, playbook):
    # The second module run starts right after the first returns (two tasks of one play, each
    # its own process as two playbooks' would be), well within the build time even on a loaded machine.
    sim_cloud.set_timings(cluster_create=BUILD_OUTLASTS_NEXT_RUN)
    args = {'name': 'queued', 'cluster_template': 'k8s-heat-fcos'}
    run = playbook(play([task('cluster', dict(args, wait=False), 'first'), task('cluster', args, 'second')]),
                   env=sim_env).assert_ok()
    first, second = run.task('first'), run.task('second')
    assert first['changed'] is True and first['cluster']['status'] == 'CREATE_IN_PROGRESS'
    assert second['changed'] is False and second['cluster']['status'] == 'CREATE_COMPLETE'
    assert second['waited'][0]['transitions'][0]['status'] == 'CREATE_IN_PROGRESS'
    assert route_count(sim_cloud.requests(), 'POST', '/clusters') - route_count(
        sim_cloud.requests(), 'POST', '/clusters/') == 1
    assert len(clusters_named(sim_cloud.state(), 'queued')) == 1


def test_busy_cluster_is_awaited_before_resizing(sim_cloud, sim_env, playbook):
    # Long enough that the second playbook starts while the first resize is still running,
    # however loaded the machine is.
    sim_cloud.set_timings(cluster_update=20)
    playbook(one('cluster', {'name': 'hpc-heat', 'node_count': 3, 'wait': False}), env=sim_env).assert_ok()
    assert cluster_state(sim_cloud.state(), 'hpc-heat')['status'] == 'UPDATE_IN_PROGRESS'
    result = playbook(one('cluster', {'name': 'hpc-heat', 'node_count': 4}), env=sim_env).assert_ok().task('step')
    assert result['changed'] is True and workers(sim_cloud, 'hpc-heat') == 4
    assert 'UPDATE_IN_PROGRESS' in result['waited'][0]['what']


def test_node_count_is_the_default_nodegroup_not_the_total(sim_cloud, sim_env, playbook):
    # hpc-heat: 2 default workers and a GPU nodegroup of 1; Magnum reports node_count 3.
    result = playbook(one('cluster', {'name': 'hpc-heat', 'node_count': 2}), env=sim_env).assert_ok().task('step')
    assert result['changed'] is False and result['cluster']['node_count'] == 3
    result = playbook(one('cluster', {'name': 'hpc-heat', 'node_count': 3}), env=sim_env, diff=True).assert_ok()
    result = result.task('step')
    assert result['diff']['before']['node_count'] == 2 and result['diff']['after']['node_count'] == 3
    assert workers(sim_cloud, 'hpc-heat') == 3 and result['cluster']['node_count'] == 4


def test_parallel_runs_create_one_cluster(sim_cloud, sim_env, playbook, tmp_path):
    sim_cloud.set_timings(cluster_create=2)
    text = one('cluster', {'name': 'twin', 'cluster_template': 'k8s-heat-fcos'})
    runs = [None, None]

    def go(i):
        workdir = tmp_path / ('run%d' % i)
        runs[i] = playbook(text, env=sim_env, workdir=str(workdir))
    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in runs:
        r.assert_ok()
    results = [r.task('step') for r in runs]
    assert results[0]['cluster']['id'] == results[1]['cluster']['id']
    # A duplicate from the race, if any, is already being deleted: one live cluster remains.
    assert [c['uuid'] for c in clusters_named(sim_cloud.state(), 'twin')] == [results[0]['cluster']['id']]


def test_same_name_twice_is_refused(sim_cloud, sim_env, playbook):
    env = dict(sim_env)
    create = one('cluster', {'name': 'dup', 'cluster_template': 'k8s-heat-fcos', 'wait': False})
    playbook(create, env=env).assert_ok()
    # A second same-named cluster made outside this module (Magnum allows it).
    subprocess.run([os.path.join(os.path.dirname(sys.executable), 'openstack'), 'coe', 'cluster', 'create',
                    '--cluster-template', 'k8s-heat-fcos', 'dup'], env=env, check=True, capture_output=True)
    uuids = [c['uuid'] for c in clusters_named(sim_cloud.state(), 'dup')]
    assert len(uuids) == 2
    before = magnum_writes(sim_cloud.requests())
    result = playbook(one('cluster', {'name': 'dup', 'node_count': 3}, ignore_errors=True), env=env).task('step')
    assert result['failed'] and '2 clusters are named' in result['msg']
    assert all(u in result['msg'] for u in uuids)
    assert magnum_writes(sim_cloud.requests()) == before
    # The uuid addresses one of them.
    result = playbook(one('cluster', {'name': uuids[1]}), env=env).assert_ok().task('step')
    assert result['cluster']['id'] == uuids[1]


def test_check_mode_create_changes_nothing(sim_cloud, sim_env, playbook):
    result = playbook(one('cluster', {'name': 'preview', 'cluster_template': 'k8s-heat-fcos', 'node_count': 3,
                                      'labels': {'gpu': True}}), env=sim_env, check=True, diff=True)
    result = result.assert_ok().task('step')
    assert result['changed'] is True and result['plan']['action'] == 'create'
    assert result['diff']['after']['labels']['gpu'] == 'true' and result['diff']['after']['labels']['kube_tag']
    assert clusters_named(sim_cloud.state(), 'preview') == []
    assert magnum_writes(sim_cloud.requests()) == {}


def test_node_count_outside_default_nodegroup_limits_is_refused(sim_cloud, sim_env, playbook):
    playbook(one('cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'default-worker', 'max_node_count': 3}),
             env=sim_env).assert_ok()
    before = magnum_writes(sim_cloud.requests())
    result = playbook(one('cluster', {'name': 'hpc-heat', 'node_count': 5}, ignore_errors=True),
                      env=sim_env).task('step')
    assert result['failed'] and 'max_node_count 3' in result['msg'] and 'node_count' in result['msg']
    assert magnum_writes(sim_cloud.requests()) == before


def workers(sim_cloud, name):
    return nodegroup_state(cluster_state(sim_cloud.state(), name), 'default-worker')['node_count']


BAD_INPUTS = {
    'Cluster name starts with a digit': 'start with a letter',
    'Cluster name too long': 'at most 242',
    'Cluster without template': 'cluster_template is needed',
    'Cluster unknown template': "cluster template 'k8s-nope' given in cluster_template does not exist",
    'Cluster master_count zero': 'master_count must be 1 or more',
    'Cluster negative node_count': 'node_count must be 0 or more',
    'Cluster create_timeout zero': 'create_timeout is in minutes',
    'Cluster docker_volume_size zero': 'docker_volume_size must be 1',
    'Cluster max_batch_size zero': 'max_batch_size must be 1',
    'Cluster negative timeout': 'timeout (seconds) must be 0 or more',
    'Cluster nodes_to_remove without node_count': 'nodes_to_remove needs node_count',
    'Cluster nodes_to_remove twice the same': 'more than once',
    'Cluster nodes_to_remove beyond the shrink': 'removes only 1',
    'Cluster label with a list value': "label 'nets' has a list value",
    'Cluster unknown flavor': "flavor 'm1.huge' given in flavor does not exist",
    'Cluster unknown master_flavor': "flavor 'm1.huge' given in master_flavor does not exist",
    'Cluster unknown keypair': "keypair 'nokey' given in keypair does not exist",
    'Cluster unknown fixed_network': "network 'nonet' given in fixed_network does not exist",
    'Cluster unknown fixed_subnet': "subnet 'nosubnet' given in fixed_subnet does not exist",
    'Cluster flavor cannot change': 'flavor_id',
    'Cluster master_count cannot change': 'cannot change the number of masters',
    'Cluster labels cannot change': 'labels',
    'Nodegroup unknown cluster': "cluster 'nocluster' given in cluster does not exist",
    'Nodegroup master role': "role 'master' is not allowed",
    'Nodegroup above max': 'above its max_node_count 4',
    'Nodegroup min above max': 'greater than max_node_count',
    'Nodegroup name starts with a digit': 'start with a letter',
    'Nodegroup unknown flavor': "flavor 'bm.nope' given in flavor does not exist",
    'Nodegroup unknown image': "image 'noimage' given in image does not exist",
    'Nodegroup docker_volume_size zero': 'docker_volume_size must be 1',
    'Nodegroup label with a list value': 'list value',
    'Nodegroup delete the default worker group': 'default nodegroup',
    'Nodegroup delete the default master group': 'default nodegroup',
    'Nodegroup flavor cannot change': 'create a new nodegroup',
    'Nodegroup resize beyond its max': 'above its max_node_count 4',
    'Template without image': 'image is needed',
    'Template unknown image': "image 'noimage' given in image does not exist",
    'Template image without os_distro': 'has no os_distro property',
    'Template unknown flavor': "flavor 'm1.huge' given in flavor does not exist",
    'Template unknown keypair': "keypair 'nokey' given in keypair does not exist",
    'Template unknown external network': "network 'nonet' given in external_network does not exist",
    'Template floating IPs without external network': 'external_network is not set',
    'Template docker_volume_size zero': 'docker_volume_size must be 1',
    'Template apiserver_port out of range': 'apiserver_port must be 1 to 65535',
    'Template in use cannot change': 'clusters use it',
    'Template driver change needs a new template': 'server_type',
    'Template image with another os_distro needs a new template': 'os_distro',
    'Template in use cannot go': 'clusters use it',
    'Kubeconfig with nowhere to put it': 'set dest',
    'Kubeconfig dest is a directory': 'is a directory',
    'Kubeconfig unknown cluster': "cluster 'nocluster' given in cluster does not exist",
    'Kubeconfig negative renew_before_days': 'renew_before_days must be 0 or more',
}


def test_every_documented_bad_input_is_refused_before_any_change(sim_cloud, sim_env, playbook, tmp_path):
    before = sim_cloud.state()
    run = playbook(os.path.join(PLAYBOOKS, 'bad_inputs.yml'), {'workdir': str(tmp_path)}, sim_env)
    assert run.rc == 0, run.explain()
    seen = dict((r['task'], r) for r in run.results)
    assert set(seen) == set(BAD_INPUTS), set(seen) ^ set(BAD_INPUTS)
    for name, text in BAD_INPUTS.items():
        entry = seen[name]
        assert entry['status'] == 'failed', (name, entry)
        assert text in entry['result']['msg'], (name, entry['result']['msg'])
    after = sim_cloud.state()
    assert magnum_writes(sim_cloud.requests()) == {}
    assert [(c['name'], c['node_count'], c['status']) for c in after['clusters']] == \
        [(c['name'], c['node_count'], c['status']) for c in before['clusters']]


def test_newest_magnum_release_is_served_with_the_pinned_microversion(sim_cloud_factory, playbook):
    cloud = sim_cloud_factory(magnum_release='master')
    env = dict(os.environ)
    env.update(cloud.env())
    run = playbook(one('cluster_info', {}), env=env).assert_ok()
    kinds = dict((c['name'], c['driver_kind']) for c in run.task('step')['clusters'])
    assert kinds['hpc-heat'] == 'heat' and kinds['hpc-capi'] == 'capi'
    assert all(c['stack_id'] for c in run.task('step')['clusters'])
