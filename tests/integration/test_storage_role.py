# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hpcops.coe.storage role after the networks role, on the simulated cloud's
"nodes" (directories, as in test_networks_role.py): the mount units it writes are
checked line by line and by systemd's own parser, a rerun changes nothing, check
mode writes nothing, bad input fails before any change, exact mode cleans up.
"""

import os
import shutil
import stat
import subprocess

import pytest

from test_networks_role import HOSTS, NETWORKS, ipoib_address, links_of, make_nodes, ports_of
from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, 'playbooks', 'storage', 'site.yml')
ROLE = 'hpcops.coe.storage : '
MOUNT_TASK = ROLE + 'Storage | Mount the shared file systems'
CEPH_KEY = 'AQDy1kNnStorageRoleKey0123456789abcdef=='

MOUNTS = [
    {'path': '/scratch', 'type': 'glusterfs', 'network': 'ib-100g', 'transport': 'rdma',
     'servers': ['10.100.250.1', '10.100.250.2', '10.100.250.3'], 'source': 'scratch'},
    {'path': '/home/shared', 'type': 'nfs', 'network': 'eth-25g', 'servers': ['10.25.250.1'],
     'source': '/export/home', 'options': ['noatime'], 'automount': True, 'automount_idle': 300},
    {'path': '/ceph/projects', 'type': 'cephfs', 'network': 'eth-10g', 'servers': ['10.10.250.1', '10.10.250.2'],
     'source': '/volumes/projects', 'ceph_user': 'hpc', 'ceph_secret': CEPH_KEY},
]


@pytest.fixture
def sim(sim_cloud_factory):
    return sim_cloud_factory(os.path.join(HERE, 'scenarios', 'interfaces.yml'), attach=0.1, detach=0.05,
                             port_bind=0.05)


def with_os_release(nodes, text='ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n'):
    for node in nodes:
        os.makedirs(os.path.join(node['root'], 'etc'), exist_ok=True)
        with open(os.path.join(node['root'], 'etc', 'os-release'), 'w') as f:
            f.write(text)
    return nodes


def run(playbook, sim, nodes, mounts=None, networks=True, **kwargs):
    """The networks role (unless networks=False: the nodes keep what an earlier run wrote), then the storage role."""
    extravars = {'storage_test_networks': networks, 'networks_test_nodes': nodes, 'networks_list': NETWORKS,
                 'networks_backend': 'systemd-networkd', 'storage_mounts': MOUNTS if mounts is None else mounts}
    extravars.update(kwargs.pop('extra', {}))
    return playbook(SITE, extravars=extravars, env=sim.env(), **kwargs)


def unit_dir(node):
    return os.path.join(node['root'], 'etc', 'systemd', 'system')


def lines(node, name):
    with open(os.path.join(unit_dir(node), name)) as f:
        return f.read().splitlines()


def changed_hosts(result):
    return sorted(set(r['host'] for r in result.results if r['status'] == 'changed'))


def verify_units(paths):
    """systemd-analyze verify on the unit files: (rc, output). Where= must match the file name."""
    proc = subprocess.run(['systemd-analyze', 'verify'] + paths, capture_output=True, text=True, timeout=120,
                          check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_mounts_over_the_site_networks_rerun_and_real_parser(sim, playbook, tmp_path):
    nodes = with_os_release(make_nodes(sim, tmp_path, HOSTS[:2]))
    result = run(playbook, sim, nodes).assert_ok()
    for node in nodes:
        got = result.results
        mine = [r for r in got if r['task'] == MOUNT_TASK and r['host'] == node['name']][0]['result']
        assert mine['packages']['needed'] == ['glusterfs-client', 'nfs-common', 'ceph-common']
        assert mine['packages']['family'] == 'debian'
        # Not the real root: nothing was run, the commands are listed.
        assert mine['commands'][0].startswith('apt-get install')
        links = links_of(node)
        ib = ports_of(sim, node['server'])['ib-100g']
        ib_link = [n for n, a in links.items() if a == ipoib_address(ib['mac_address'])][0]
        eth25 = ports_of(sim, node['server'])['eth-25g']
        eth25_link = [n for n, a in links.items() if a == eth25['mac_address']]
        assert sorted(os.listdir(unit_dir(node))) == [
            'ceph-projects.mount', 'home-shared.automount', 'home-shared.mount', 'remote-fs.target.wants',
            'scratch.mount']
        assert sorted(os.listdir(os.path.join(unit_dir(node), 'remote-fs.target.wants'))) == [
            'ceph-projects.mount', 'home-shared.automount', 'scratch.mount']
        assert os.readlink(os.path.join(unit_dir(node), 'remote-fs.target.wants', 'scratch.mount')) == \
            '/etc/systemd/system/scratch.mount'
        device = 'sys-subsystem-net-devices-%s.device' % ib_link
        assert lines(node, 'scratch.mount') == [
            '# hpcops.coe.node_mounts: /scratch',
            '# Written by hpcops.coe.node_mounts; changes made here are overwritten.',
            '[Unit]',
            'Description=glusterfs 10.100.250.1:/scratch on network ib-100g over rdma',
            'After=network-online.target %s' % device,
            'Wants=network-online.target %s' % device,
            '',
            '[Mount]',
            'What=10.100.250.1:/scratch',
            'Where=/scratch',
            'Type=glusterfs',
            'Options=_netdev,transport=rdma,backup-volfile-servers=10.100.250.2:10.100.250.3',
            'TimeoutSec=90',
            '',
            '[Install]',
            'WantedBy=remote-fs.target']
        nfs = lines(node, 'home-shared.mount')
        assert 'Options=_netdev,vers=4.2,proto=tcp,noatime' in nfs and '[Install]' not in nfs
        # eth-25g is matched by MAC in the networks role's files: the link name comes from sysfs.
        assert len(eth25_link) == 1, links
        assert 'After=network-online.target sys-subsystem-net-devices-%s.device' % eth25_link[0] in nfs
        assert lines(node, 'home-shared.automount')[-6:] == [
            '[Automount]', 'Where=/home/shared', 'TimeoutIdleSec=300', '', '[Install]', 'WantedBy=remote-fs.target']
        ceph = lines(node, 'ceph-projects.mount')
        assert 'What=10.10.250.1,10.10.250.2:/volumes/projects' in ceph
        assert 'Options=_netdev,name=hpc,secretfile=/etc/ceph/hpcops-ceph-projects.secret' in ceph
        assert not [line for line in ceph if CEPH_KEY in line]
        secret = os.path.join(node['root'], 'etc', 'ceph', 'hpcops-ceph-projects.secret')
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
        with open(secret) as f:
            assert f.read() == CEPH_KEY + '\n'
    assert CEPH_KEY not in result.stdout + result.stderr

    again = run(playbook, sim, nodes).assert_ok()
    assert again.changed == []

    # systemd's own parser, last (the checks above hold without it).
    if not shutil.which('systemd-analyze'):
        pytest.skip('systemd-analyze not installed (Debian package systemd): units not checked by the real parser')
    paths = [os.path.join(unit_dir(nodes[0]), n) for n in sorted(os.listdir(unit_dir(nodes[0])))
             if n.endswith('mount')]
    rc, output = verify_units(paths)
    assert rc == 0 and output == '', output
    # The parser is not lenient: a unit whose name does not match Where= is refused.
    wrong = tmp_path / 'wrong' / 'scratch2.mount'
    wrong.parent.mkdir()
    shutil.copy(paths[-1], str(wrong))
    rc, output = verify_units([str(wrong)])
    assert rc != 0 and "doesn't match unit name" in output


def test_check_mode_writes_nothing_and_exact_removes_what_it_made(sim, playbook, tmp_path):
    nodes = with_os_release(make_nodes(sim, tmp_path, HOSTS[:1]))
    node = nodes[0]
    check = run(playbook, sim, nodes, check=True, diff=True).assert_ok()
    assert not os.path.exists(unit_dir(node))
    planned = check.task(MOUNT_TASK)
    assert planned['changed'] is True and 'etc/systemd/system/scratch.mount' in planned['files_written']
    assert CEPH_KEY not in check.stdout and '<secret>' in check.stdout
    # The networks are not configured yet (their role ran in check mode too): said, not failed.
    assert 'network ib-100g is not configured on this node yet' in ' '.join(check.entry(MOUNT_TASK)['warnings'])

    run(playbook, sim, nodes).assert_ok()
    # An operator's own unit is never touched.
    with open(os.path.join(unit_dir(node), 'data.mount'), 'w') as f:
        f.write('[Mount]\nWhat=nas:/data\nWhere=/data\nType=nfs\n')
    absent = [dict(MOUNTS[0]), MOUNTS[1]]
    absent[0]['state'] = 'absent'
    result = run(playbook, sim, nodes, mounts=absent, networks=False).assert_ok()
    assert result.task(MOUNT_TASK)['removed'] == ['/scratch']
    assert sorted(os.listdir(unit_dir(node))) == [
        'ceph-projects.mount', 'data.mount', 'home-shared.automount', 'home-shared.mount', 'remote-fs.target.wants']
    # exact: the CephFS mount, no longer listed, goes with its secret.
    result = run(playbook, sim, nodes, mounts=[MOUNTS[1]], networks=False, extra={'storage_state': 'exact'}).assert_ok()
    assert result.task(MOUNT_TASK)['removed'] == ['/ceph/projects']
    assert sorted(os.listdir(unit_dir(node))) == [
        'data.mount', 'home-shared.automount', 'home-shared.mount', 'remote-fs.target.wants']
    assert os.listdir(os.path.join(node['root'], 'etc', 'ceph')) == []
    # fstab instead: the units go, the entries come, the operator's lines stay.
    with open(os.path.join(node['root'], 'etc', 'fstab'), 'w') as f:
        f.write('LABEL=root / ext4 defaults 0 1\n')
    result = run(playbook, sim, nodes, mounts=[MOUNTS[1]], networks=False, extra={'storage_method': 'fstab'}).assert_ok()
    assert sorted(os.listdir(unit_dir(node))) == ['data.mount', 'remote-fs.target.wants']
    with open(os.path.join(node['root'], 'etc', 'fstab')) as f:
        fstab = f.read().splitlines()
    assert fstab[:2] == ['LABEL=root / ext4 defaults 0 1', '# hpcops.coe.node_mounts: /home/shared']
    assert fstab[2].startswith('10.25.250.1:/export/home /home/shared nfs _netdev,vers=4.2,proto=tcp,noatime,'
                               'x-systemd.requires=network-online.target,x-systemd.after=sys-subsystem-net-devices-')
    assert fstab[2].endswith('.device,x-systemd.automount,x-systemd.idle-timeout=300 0 0') and len(fstab) == 3
    again = run(playbook, sim, nodes, mounts=[MOUNTS[1]], networks=False, extra={'storage_method': 'fstab'}).assert_ok()
    assert again.changed == []


def test_kubernetes_volumes_follow_the_nodes_that_mounted(kube_world, playbook, tmp_path):  # noqa: F811
    """A local PersistentVolume whose node affinity lists the nodes where the mount succeeded
    (not the node whose OS has no client), and a StorageClass for the NFS CSI driver."""
    world = kube_world
    nodes = []
    for name, os_release in (('gpu-1', 'ID=ubuntu\nID_LIKE=debian\n'),
                             ('gpu-2', 'ID=rocky\nID_LIKE="rhel centos fedora"\n'), ('odd-1', 'ID=alpine\n')):
        root = tmp_path / name
        (root / 'etc').mkdir(parents=True)
        (root / 'etc' / 'os-release').write_text(os_release)
        nodes.append({'name': name, 'root': str(root)})
    mounts = [dict(MOUNTS[0], network='', transport='tcp'), dict(MOUNTS[1], network='')]
    extravars = {'networks_test_nodes': nodes, 'storage_test_networks': False, 'storage_mounts': mounts,
                 'storage_kubeconfig': world.kubeconfig,
                 'storage_kubernetes_volumes': [{'name': 'scratch', 'mount': '/scratch', 'capacity': '100Ti'},
                                                {'name': 'home-nfs', 'mount': '/home/shared', 'kind': 'nfs-csi',
                                                 'reclaim_policy': 'Delete'}]}
    result = playbook(SITE, extravars=extravars)
    assert [r['host'] for r in result.failed] == ['odd-1'], result.explain()
    assert 'set os_family (valid: debian, fedora-coreos, rhel)' in result.failed[0]['result']['msg']
    pv = world.get('v1', 'PersistentVolume', 'scratch')
    assert pv['spec']['local'] == {'path': '/scratch'} and pv['spec']['storageClassName'] == 'scratch'
    assert pv['spec']['accessModes'] == ['ReadWriteMany'] and pv['spec']['capacity'] == {'storage': '100Ti'}
    assert pv['spec']['nodeAffinity']['required']['nodeSelectorTerms'] == [{'matchExpressions': [
        {'key': 'kubernetes.io/hostname', 'operator': 'In', 'values': ['gpu-1', 'gpu-2']}]}]
    local = world.get('storage.k8s.io/v1', 'StorageClass', 'scratch')
    assert (local['provisioner'], local['volumeBindingMode']) == ('kubernetes.io/no-provisioner', 'WaitForFirstConsumer')
    nfs = world.get('storage.k8s.io/v1', 'StorageClass', 'home-nfs')
    assert nfs['provisioner'] == 'nfs.csi.k8s.io' and nfs['reclaimPolicy'] == 'Delete'
    assert nfs['parameters'] == {'server': '10.25.250.1', 'share': '/export/home'}
    assert nfs['mountOptions'] == ['nfsvers=4.2']
    # The packages differ per family: apt on the Ubuntu node, dnf on the Rocky one.
    commands = dict((r['host'], r['result']['commands'][0]) for r in result.results if r['task'] == MOUNT_TASK
                    and not r['result'].get('failed'))
    assert commands == {'gpu-1': 'apt-get install -y -q --no-install-recommends glusterfs-client nfs-common',
                        'gpu-2': 'dnf install -y -q glusterfs-fuse nfs-utils'}

    extravars['networks_test_nodes'] = nodes[:2]
    again = playbook(SITE, extravars=extravars).assert_ok()
    assert again.changed == []
