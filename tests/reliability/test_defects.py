# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Defects an adversarial operator found, each pinned by a test that failed before its fix.

* failed clusters and nodegroups read as failed, not as success, and the cluster role
  names the nodes in ERROR instead of dying on an empty address list;
* interrupted or concurrent server_interfaces runs never leave a network attached twice;
* a transient 5xx on an attach is checked (did it land?) and retried;
* inventory configuration typos are errors, and its cache files are private;
* a nodegroup with fewer servers than Magnum counts is reported;
* a scale-down through the role can name the nodes to remove.
"""

import re
import os
import stat
import subprocess
import sys

import pytest
import yaml

from reliability_kit import REPO, CloudApi, play, run_playbook, task


# --------------------------------------------------------------------------- inventory

def _inventory(tmp_path, sim, **options):
    with open(sim.clouds_yaml) as f:
        entry = yaml.safe_load(f)['clouds'][sim.cloud_name]
    clouds_yaml = tmp_path / 'clouds.yaml'
    clouds_yaml.write_text(yaml.safe_dump({'clouds': {'sim': entry}}))
    config = {'plugin': 'hpcops.coe.clusters', 'clouds': ['sim'], 'clouds_yaml_path': [str(clouds_yaml)]}
    config.update(options)
    path = tmp_path / 'test.coe_clusters.yml'
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    env.update({'ANSIBLE_COLLECTIONS_PATH': os.environ.get('ANSIBLE_COLLECTIONS_PATH')
                or os.path.join(REPO, '.cache', 'collections'),
                'ANSIBLE_HOME': str(tmp_path / 'ansible-home'), 'ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED': 'true',
                'ANSIBLE_NOCOLOR': '1', 'PYTHONWARNINGS': 'ignore'})
    env.pop('OS_CLOUD', None)
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-inventory'), '-i', str(path), '--list']
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize('typo, meant', [('cluster', 'clusters'), ('ssh_usr', 'ssh_user'),
                                         ('fail_on_error', 'fail_on_errors')])
def test_inventory_refuses_unknown_config_keys(cloud, tmp_path, typo, meant):
    cloud.reset_requests()
    proc = _inventory(tmp_path, cloud, **{typo: ['hpc-heat'] if typo == 'cluster' else 'x'})
    assert proc.returncode != 0, 'a typo must not widen the inventory to every cluster:\n' + proc.stdout[:2000]
    text = ' '.join((proc.stderr + proc.stdout).split())
    assert "'%s'" % typo in text and meant in text and 'host_network' in text, text[-2000:]
    # Refused before any cloud was asked.
    assert not cloud.requests()['by_route'], cloud.requests()['by_route']


def test_inventory_cache_files_are_private(cloud, tmp_path):
    cache_dir = tmp_path / 'inventory-cache'
    proc = _inventory(tmp_path, cloud, cache=True, cache_plugin='ansible.builtin.jsonfile',
                      cache_connection=str(cache_dir), cache_timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = [cache_dir / name for name in os.listdir(cache_dir)]
    assert files, 'nothing was cached'
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, (path, oct(os.stat(path).st_mode))


# --------------------------------------------------------------------------- failed clusters

def _cluster_state(sim, name):
    return [c for c in sim.state()['clusters'] if c['name'] == name][0]


def _servers_in_error(sim, cluster):
    ids = set(sid for ng in _cluster_state(sim, cluster)['nodegroups'] for sid in ng['servers'])
    return sorted(s['name'] for s in sim.state()['servers'] if s['id'] in ids and s['status'] == 'ERROR')


@pytest.fixture(scope='module')
def update_failed(module_factory, tmp_path_factory):
    """hpc-heat resized past the bare-metal pool (12 free nodes): two new workers end in ERROR, UPDATE_FAILED."""
    sim = module_factory.cloud()
    work = str(tmp_path_factory.mktemp('update-failed'))
    run = run_playbook(play([task('cluster', {'name': 'hpc-heat', 'node_count': 16, 'timeout': 120},
                                  ignore_errors=True)]), os.path.join(work, 'resize'), openstack=sim)
    assert run.failed('cluster'), run.explain()
    assert _cluster_state(sim, 'hpc-heat')['status'] == 'UPDATE_FAILED'
    errors = _servers_in_error(sim, 'hpc-heat')
    assert len(errors) == 2, errors
    return sim, work, errors


def test_a_rerun_on_an_update_failed_cluster_fails_with_the_reason(update_failed):
    sim, work, errors = update_failed
    run = run_playbook(play([task('cluster', {'name': 'hpc-heat', 'node_count': 16, 'timeout': 60},
                                  ignore_errors=True)]), os.path.join(work, 'same'), openstack=sim)
    record = run.record('cluster')
    assert record['status'] != 'ok', 'an UPDATE_FAILED cluster read as converged: %s' % record['result']
    result = record['result']
    assert 'UPDATE_FAILED' in result['msg'] and 'No valid host' in result['msg'], result['msg']
    assert 'No valid host' in (result.get('status_reason') or ''), result
    assert isinstance(result.get('faults'), dict) and result['faults'], result
    for name in errors:
        assert name in result['msg'], (name, result['msg'])


def test_the_role_stops_naming_the_nodes_in_error(update_failed):
    sim, work, errors = update_failed
    doc = [{'name': 'cluster role', 'hosts': 'localhost', 'gather_facts': False,
            'module_defaults': {'group/hpcops.coe.openstack': {'cloud': 'hpcops-sim'}},
            'roles': [{'role': 'hpcops.coe.cluster', 'vars': {
                'cluster_name': 'hpc-heat', 'cluster_template_manage': False,
                'cluster_template': {'name': 'k8s-heat-fcos'}, 'cluster_node_count': 16,
                'cluster_flavor': 'bm.compute', 'cluster_timeout': 60,
                'cluster_kubeconfig_path': os.path.join(work, 'kubeconfig')}}]}]
    run = run_playbook(doc, os.path.join(work, 'role'), openstack=sim)
    assert run.rc != 0
    bad = [r for r in run.records if r['status'] == 'failed']
    assert bad, run.explain()
    msg = bad[-1]['result'].get('msg') or ''
    assert 'No first item' not in msg and 'access.yml' not in bad[-1]['task'], run.explain()
    for name in errors:
        assert name in msg, (name, msg)


def test_a_resize_back_is_tried_as_the_repair(update_failed):
    sim, work, errors = update_failed
    run = run_playbook(play([task('cluster', {'name': 'hpc-heat', 'node_count': 2, 'timeout': 60},
                                  check_mode=True)]), os.path.join(work, 'back'), openstack=sim)
    result = run.result('cluster')
    assert run.record('cluster')['status'] == 'ok' and result['changed'], run.explain()
    assert result['plan']['resize'] == 2
    assert any('UPDATE_FAILED' in w for w in result.get('warnings') or []), result


# --------------------------------------------------------------------------- vanished nodes

def test_a_node_deleted_behind_magnums_back_is_reported(cloud, tmp_path):
    api = CloudApi(cloud).login()
    workers = [ng for ng in _cluster_state(cloud, 'hpc-capi')['nodegroups'] if ng['name'] == 'default-worker'][0]
    api.call('DELETE', '/compute/v2.1/servers/%s' % workers['servers'][0])
    cloud.wait_idle(20)
    run = run_playbook(play([task('cluster_nodes', {'cluster': 'hpc-capi'})]), str(tmp_path), openstack=cloud)
    result = run.result('cluster_nodes')
    warnings = ' '.join(result.get('warnings') or [])
    assert 'default-worker' in warnings and re.search(r'\b2\b.*\b1\b', warnings), result.get('warnings')
    assert result['missing_nodes'] == [{'nodegroup': 'default-worker', 'node_count': 2, 'servers': 1, 'missing': 1}]


# --------------------------------------------------------------------------- scale-down

def _workers(sim, cluster, nodegroup='default-worker'):
    ng = [g for g in _cluster_state(sim, cluster)['nodegroups'] if g['name'] == nodegroup][0]
    return dict(zip(ng['server_names'], ng['servers']))


def _role_play(work, cluster, template, node_count, **extra):
    variables = {'cluster_name': cluster, 'cluster_template_manage': False, 'cluster_template': {'name': template},
                 'cluster_node_count': node_count, 'cluster_flavor': 'bm.compute', 'cluster_timeout': 120,
                 'cluster_add_hosts': False, 'cluster_kubeconfig_path': os.path.join(work, 'kubeconfig')}
    variables.update(extra)
    return [{'name': 'cluster role', 'hosts': 'localhost', 'gather_facts': False,
             'module_defaults': {'group/hpcops.coe.openstack': {'cloud': 'hpcops-sim'}},
             'roles': [{'role': 'hpcops.coe.cluster', 'vars': variables}]}]


def test_the_role_scales_down_removing_the_named_node(cloud, tmp_path):
    before = _workers(cloud, 'hpc-capi')
    victim, survivor = sorted(before)
    run = run_playbook(_role_play(str(tmp_path), 'hpc-capi', 'k8s-capi-v1.30', 1, cluster_nodes_to_remove=[victim]),
                       str(tmp_path), openstack=cloud)
    assert run.rc == 0, run.explain()
    result = run.result('hpcops.coe.cluster : Cluster hpc-capi')
    assert result['plan']['nodes_to_remove'] == [before[victim]], result['plan']
    assert _workers(cloud, 'hpc-capi') == {survivor: before[survivor]}


def test_a_scale_down_naming_no_node_warns_and_keeps_the_survivors(cloud, tmp_path):
    before = _workers(cloud, 'hpc-capi')
    run = run_playbook(_role_play(str(tmp_path), 'hpc-capi', 'k8s-capi-v1.30', 1), str(tmp_path), openstack=cloud)
    assert run.rc == 0, run.explain()
    warnings = ' '.join(run.result('hpcops.coe.cluster : Cluster hpc-capi').get('warnings') or [])
    assert 'nodes_to_remove' in warnings and 'chooses' in warnings, warnings
    after = _workers(cloud, 'hpc-capi')
    # Cluster API deletes machines by its delete policy; the survivors are not replaced.
    assert len(after) == 1 and set(after.items()) <= set(before.items()), (before, after)


def test_a_scale_up_keeps_the_existing_capi_machines(cloud, tmp_path):
    before = _workers(cloud, 'hpc-capi')
    run = run_playbook(play([task('cluster', {'name': 'hpc-capi', 'node_count': 3, 'timeout': 120})]),
                       str(tmp_path), openstack=cloud)
    assert run.rc == 0, run.explain()
    after = _workers(cloud, 'hpc-capi')
    assert len(after) == 3 and set(before.items()) <= set(after.items()), (before, after)


def test_nodes_to_remove_must_be_workers_of_the_cluster(cloud, tmp_path):
    run = run_playbook(play([task('cluster', {'name': 'hpc-capi', 'node_count': 1, 'nodes_to_remove': ['login-1']},
                                  ignore_errors=True)]), str(tmp_path), openstack=cloud)
    msg = run.result('cluster')['msg']
    assert run.failed('cluster') and 'login-1' in msg and 'default-worker' in msg, msg
    assert len(_workers(cloud, 'hpc-capi')) == 2


# --------------------------------------------------------------------------- fault rules

def test_a_latency_rule_does_not_shadow_an_error_rule(cloud):
    cloud.set_faults([{'service': 'container-infra', 'latency_ms': 1},
                      {'service': 'container-infra', 'status': 503, 'count': 1}])
    api = CloudApi(cloud).login()
    with pytest.raises(Exception) as failed:
        api.clusters()
    assert '503' in str(failed.value)
    assert [r['fired'] for r in cloud.faults()] == [1, 1], cloud.faults()


@pytest.mark.parametrize('rule', [{'service': 'container-infra-management', 'status': 503},
                                  {'service': 'magnum', 'path_regex': '^/magnum/v1', 'status': 503}])
def test_a_rule_that_cannot_fire_is_refused(cloud, rule):
    with pytest.raises(Exception, match='unknown service|cannot match'):
        cloud.set_faults([rule])


# --------------------------------------------------------------------------- attaching

def _ports_by_server(sim, server_ids):
    api = CloudApi(sim).login()
    nets = dict((n['id'], n['name']) for n in api.networks())
    out = dict((sid, []) for sid in server_ids)
    for port in api.ports():
        if port.get('device_id') in out:
            out[port['device_id']].append(nets[port['network_id']])
    return out


def _doubled(ports_by_server):
    return sum(len(nets) - len(set(nets)) for nets in ports_by_server.values())


def test_a_5xx_on_attach_is_checked_and_retried(cloud, tmp_path):
    workers = _workers(cloud, 'hpc-capi')
    # Every other attach is answered 502 after Nova did it, every third 503 before it did.
    cloud.set_faults([{'service': 'compute', 'method': 'POST', 'path_regex': '/os-interface$', 'status': 502,
                       'after': True, 'count': 2},
                      {'service': 'compute', 'method': 'POST', 'path_regex': '/os-interface$', 'status': 503,
                       'count': 2}])
    run = run_playbook(play([task('server_interfaces', {
        'servers': sorted(workers), 'interfaces': [{'network': 'eth-10g'}, {'network': 'ib-100g'}],
        'retry_delay': 0.1, 'timeout': 60})]), str(tmp_path), openstack=cloud)
    assert [r['fired'] for r in cloud.faults()] == [2, 2], cloud.faults()
    assert run.rc == 0, run.explain()
    ports = _ports_by_server(cloud, workers.values())
    assert _doubled(ports) == 0 and all(sorted(n) == ['eth-10g', 'ib-100g', 'private'] for n in ports.values()), ports
    assert run.result('server_interfaces')['summary']['attached'] == 4


def test_present_removes_duplicates_the_module_made_and_only_those(cloud, tmp_path):
    api = CloudApi(cloud).login()
    login = [s for s in api.servers() if s['name'] == 'login-1'][0]
    ten = [n for n in api.networks() if n['name'] == 'eth-10g'][0]
    twenty_five = [n for n in api.networks() if n['name'] == 'eth-25g'][0]
    # Two attachments of eth-10g by the module (as an interrupted and a concurrent run leave them) ...
    run = run_playbook(play([task('server_interfaces', {'servers': ['login-1'], 'interfaces': [
        {'network': 'eth-10g'}, {'network': 'eth-10g'}]})]), str(tmp_path / 'twice'), openstack=cloud)
    assert run.rc == 0, run.explain()
    # ... and two of eth-25g by someone else.
    for dummy in range(2):
        api.call('POST', '/compute/v2.1/servers/%s/os-interface' % login['id'],
                 {'interfaceAttachment': {'net_id': twenty_five['id']}})
    run = run_playbook(play([task('server_interfaces', {'servers': ['login-1'], 'interfaces': [
        {'network': 'eth-10g'}, {'network': 'eth-25g'}]})]), str(tmp_path / 'once'), openstack=cloud)
    assert run.rc == 0, run.explain()
    result = run.result('server_interfaces')
    assert [d['network'] for d in result['servers'][0]['detached']] == ['eth-10g'], result['servers'][0]
    cloud.wait_idle(20)
    final = sorted(_ports_by_server(cloud, [login['id']])[login['id']])
    assert final == ['eth-10g', 'eth-25g', 'eth-25g', 'private'], final
    assert ten['id']


def test_a_rerun_after_sigkill_mid_attach_never_doubles(cloud, tmp_path):
    from reliability_kit import Started, wait_request

    servers = {}
    for group in ('default-worker', 'gpu'):
        servers.update(_workers(cloud, 'hpc-heat', group))
    servers.update(_workers(cloud, 'hpc-capi'))
    # The attaches outlast the rerun's start, also on a loaded machine (two per server, one after
    # the other: 30 s), so the killed run's module process is still attaching when the rerun
    # reaches the servers.
    cloud.set_timings(attach=15.0)
    doc = play([task('server_interfaces', {
        'servers': sorted(servers), 'interfaces': [{'network': 'eth-10g'}, {'network': 'ib-100g'}],
        'concurrency': 10, 'retry_delay': 0.1, 'timeout': 120})])
    first = Started(doc, str(tmp_path / 'killed'), openstack=cloud)
    wait_request(cloud, 'POST', '/os-interface', timeout=120, run=first)
    first.kill()
    rerun = run_playbook(doc, str(tmp_path / 'rerun'), openstack=cloud)
    first.wait_group()
    assert rerun.rc == 0, rerun.explain()
    # The module process of the killed run went on attaching: the rerun saw it and took its turn.
    assert rerun.result('server_interfaces')['summary']['waited_for_other_runs'] >= 1, rerun.result(
        'server_interfaces')['summary']
    cloud.wait_idle(20)
    ports = _ports_by_server(cloud, servers.values())
    assert _doubled(ports) == 0, ports
    assert all({'eth-10g', 'ib-100g'} <= set(n) for n in ports.values()), ports
