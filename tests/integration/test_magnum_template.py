# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.cluster_template run by ansible-playbook against the simulated cloud."""

import pytest

from test_magnum_support import (
    magnum_writes,
    one,
    play,
    route_count,
    task,
)

TEMPLATE = {
    'name': 'k8s-bm-test',
    'image': 'fedora-coreos-40',
    'server_type': 'vm',
    'flavor': 'm1.small',
    'master_flavor': 'm1.large',
    'external_network': 'public',
    'fixed_network': 'private',
    'fixed_subnet': 'private-subnet',
    'keypair': 'hpc-key',
    'network_driver': 'calico',
    'floating_ip_enabled': False,
    'master_lb_enabled': True,
    'labels': {'kube_tag': 'v1.28.9', 'auto_healing_enabled': False, 'boot_volume_size': 50},
}


@pytest.mark.realservices
def test_template_create_rerun_patch_and_delete(sim_cloud, sim_env, playbook):
    tasks = [
        task('cluster_template', TEMPLATE, name='Create'),
        task('cluster_template', TEMPLATE, name='Create again'),
        task('cluster_template', dict(TEMPLATE, public=True, labels=dict(TEMPLATE['labels'], kube_tag='v1.28.10')),
             name='Publish and retag'),
        task('cluster_template', dict(TEMPLATE, public=True, labels=dict(TEMPLATE['labels'], kube_tag='v1.28.10')),
             name='Publish and retag again'),
        task('cluster_template', {'name': 'k8s-bm-test', 'state': 'absent'}, name='Delete'),
        task('cluster_template', {'name': 'k8s-bm-test', 'state': 'absent'}, name='Delete again'),
    ]
    run = playbook(play(tasks), env=sim_env, diff=True).assert_ok()
    created = run.task('Create')
    assert created['changed'] is True
    tpl = created['cluster_template']
    assert tpl['cluster_distro'] == 'fedora-coreos' and tpl['coe'] == 'kubernetes'
    assert tpl['labels'] == {'kube_tag': 'v1.28.9', 'auto_healing_enabled': 'false', 'boot_volume_size': '50'}
    assert tpl['master_lb_enabled'] is True and tpl['floating_ip_enabled'] is False
    assert run.task('Create again')['changed'] is False

    patched = run.task('Publish and retag')
    assert patched['changed'] is True
    assert sorted(op['path'] for op in patched['patch']) == ['/labels', '/public']
    assert patched['cluster_template']['public'] is True
    assert patched['diff']['before']['public'] is False and patched['diff']['after']['public'] is True
    assert run.task('Publish and retag again')['changed'] is False
    assert route_count(sim_cloud.requests(), 'PATCH', '/clustertemplates/') == 1

    assert run.task('Delete')['changed'] is True
    assert run.task('Delete again')['changed'] is False


def test_template_in_use_accepts_publishing_only(sim_cloud, sim_env, playbook):
    tasks = [
        task('cluster_template', {'name': 'k8s-heat-fcos', 'docker_volume_size': 40}, name='Resize volumes',
             ignore_errors=True),
        task('cluster_template', {'name': 'k8s-heat-fcos', 'public': True}, name='Publish'),
    ]
    run = playbook(play(tasks), env=sim_env)
    refused = run.task('Resize volumes')
    assert refused['failed'] and 'hpc-heat' in refused['msg'] and 'docker_volume_size' in refused['msg']
    assert refused['used_by']
    assert run.task('Publish')['changed'] is True


def test_driver_changes_are_reported_not_patched(sim_cloud, sim_env, playbook):
    playbook(one('cluster_template', TEMPLATE), env=sim_env).assert_ok()
    before = magnum_writes(sim_cloud.requests())
    run = playbook(play([
        task('cluster_template', dict(TEMPLATE, server_type='bm'), name='Bare metal', ignore_errors=True),
        task('cluster_template', dict(TEMPLATE, image='ubuntu-jammy-kube-v1.30.4'), name='Other distro',
             ignore_errors=True),
    ]), env=sim_env)
    assert run.task('Bare metal')['needs_recreation'] == ['server_type']
    assert run.task('Other distro')['needs_recreation'] == ['image']
    assert 'Nothing was changed' in run.task('Other distro')['msg']
    assert magnum_writes(sim_cloud.requests()) == before


def test_check_mode_create_changes_nothing(sim_cloud, sim_env, playbook):
    run = playbook(one('cluster_template', TEMPLATE), env=sim_env, check=True, diff=True).assert_ok()
    result = run.task('step')
    assert result['changed'] is True and result['diff']['after']['cluster_distro'] == 'fedora-coreos'
    assert magnum_writes(sim_cloud.requests()) == {}
