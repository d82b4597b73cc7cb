# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from ansible_collections.hpcops.coe.plugins.modules import cluster_info
from ansible_collections.hpcops.coe.tests.unit.plugins.modules.test_cluster_fakes import (  # pylint: disable=unused-import
    cloud,
    run_module,
)

main = cluster_info.main


def test_lists_clusters_with_nodegroups_and_driver_kind(cloud):
    tpl = cloud.add_template('k8s-v1')
    capi = cloud.add_template('k8s-capi', driver='k8s_capi_helm_v1')
    heat = cloud.add_cluster('heat', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE',
                             api_address='https://10.0.0.5:6443', master_addresses=['10.0.0.5'])
    cloud.add_nodegroup(heat['uuid'], 'gpu', max_node_count=8, labels={'gpu': 'true'})
    cloud.add_cluster('capi', cluster_template_id=capi['uuid'], status='CREATE_COMPLETE', stack_id='kube-ab12c',
                      api_address='https://10.0.0.9:6443')
    res = run_module(main, {}, check=True)
    assert res['changed'] is False
    by_name = dict((c['name'], c) for c in res['clusters'])
    assert by_name['heat']['driver_kind'] == 'heat' and by_name['capi']['driver_kind'] == 'capi'
    assert by_name['capi']['cluster_template_name'] == 'k8s-capi'
    gpu = [g for g in by_name['heat']['nodegroups'] if g['name'] == 'gpu'][0]
    # Read in full: the list view lacks the limits and labels.
    assert gpu['max_node_count'] == 8 and gpu['labels'] == {'gpu': 'true'}
    assert cloud.changes() == []


def test_name_filter_returns_all_same_named_and_faults(cloud):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_FAILED', faults={'a': 'b'})
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    cloud.add_cluster('other', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    res = run_module(main, dict(name='hpc', nodegroups=False))
    assert [c['name'] for c in res['clusters']] == ['hpc', 'hpc']
    assert res['clusters'][0]['faults'] == {'a': 'b'}
    assert 'nodegroups' not in res['clusters'][0]


def test_unknown_name_returns_empty(cloud):
    res = run_module(main, dict(name='nope'))
    assert res['clusters'] == []


def test_old_magnum_skips_nodegroups_with_warning(cloud):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('hpc', cluster_template_id=tpl['uuid'], status='CREATE_COMPLETE')
    cloud.max_version = (1, 8)
    res = run_module(main, {})
    assert 'nodegroups' not in res['clusters'][0]
    assert any('1.9' in w for w in res.get('warnings', []))


def test_include_deleting(cloud):
    tpl = cloud.add_template('k8s-v1')
    cloud.add_cluster('gone', cluster_template_id=tpl['uuid'], status='DELETE_IN_PROGRESS')
    assert len(run_module(main, {})['clusters']) == 1
    assert run_module(main, dict(include_deleting=False))['clusters'] == []
