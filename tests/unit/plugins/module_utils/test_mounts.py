# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount logic of hpcops.coe.node_mounts: input checks, unit names, options and rendering."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shutil
import subprocess

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import mounts as mu

NETWORKS = [{'name': 'eth-25g', 'mtu': 9000}, {'name': 'ib-100g', 'kind': 'infiniband', 'mtu': 4092}]


def mount(**kw):
    m = {'path': '/scratch', 'type': 'glusterfs', 'servers': ['10.100.0.10'], 'source': 'scratch', 'network': '',
         'transport': 'auto', 'nfs_version': '4.2', 'options': [], 'automount': False, 'automount_idle': 600,
         'ceph_user': 'admin', 'ceph_secret': None, 'ceph_fs': None, 'state': 'present'}
    m.update(kw)
    return m


def params(*mounts, **kw):
    p = {'networks': NETWORKS, 'rdma_networks': [], 'mounts': list(mounts)}
    p.update(kw)
    return p


@pytest.mark.parametrize('path, escaped', [
    ('/scratch', 'scratch'), ('/home/shared', 'home-shared'), ('/mnt/my-data', 'mnt-my\\x2ddata'),
    ('/srv/.hidden/x', 'srv-.hidden-x'), ('/.dot', '\\x2edot'), ('/a//b/', 'a-b'), ('/', '-'),
    ('/data/ü', 'data-\\xc3\\xbc'),
])
def test_escape_path_follows_systemd(path, escaped):
    assert mu.escape_path(path) == escaped
    if shutil.which('systemd-escape'):
        assert subprocess.check_output(['systemd-escape', '--path', path], text=True).strip() == escaped


def test_good_input_has_no_problems():
    assert mu.check_input(params(
        mount(network='ib-100g', transport='rdma', servers=['10.100.0.10', '10.100.0.11']),
        mount(path='/home', type='nfs', source='/export/home', network='eth-25g'),
        mount(path='/ceph', type='cephfs', source=None, ceph_secret='AQB=='),
        mount(path='/lustre', type='lustre', source='work', network='ib-100g'))) == []


@pytest.mark.parametrize('bad, says', [
    (mount(network='eth-100g'), ["network 'eth-100g' is not one of the site's networks", 'valid: eth-25g, ib-100g']),
    (mount(network='eth-25g', transport='rdma'),
     ["transport rdma over network 'eth-25g'", 'plain ethernet', 'RDMA-capable network (ib-100g)']),
    (mount(transport='rdma'), ['transport rdma needs network set', 'ib-100g']),
    (mount(type='cephfs', source=None), ['cephfs needs ceph_secret']),
    (mount(type='cephfs', ceph_secret='two words'), ['ceph_secret must be a single word']),
    (mount(ceph_secret='x'), ['ceph_secret is only for cephfs']),
    (mount(type='cephfs', ceph_secret='k', transport='rdma', network='ib-100g'), ['rdma is not available for cephfs']),
    (mount(path='scratch'), ['absolute, normalised path']),
    (mount(path='/a/../b'), ['absolute, normalised path']),
    (mount(path='/'), ['other than /']),
    (mount(type='nfs', source='/x', servers=['a', 'b']), ['NFS mounts one server', 'got 2']),
    (mount(type='nfs', source='x'), ['export path for nfs']),
    (mount(source=None), ['source is required for glusterfs', 'volume name']),
    (mount(servers=[]), ['at least one server']),
    (mount(servers=['10.0.0.1 ; rm']), ["server '10.0.0.1 ; rm' is not a host name"]),
    (mount(options=['rw,exec']), ["option 'rw,exec' must be one mount option"]),
    (mount(options=['x\nExecStart=/bin/sh']), ['must be one mount option']),
    (mount(source='vol\n[Install]'), ['source']),
    (mount(automount_idle=-1), ['automount_idle -1']),
    (mount(nfs_version='3'), ["nfs_version '3'", '4.2']),
])
def test_bad_input_is_named(bad, says):
    problems = ' | '.join(mu.check_input(params(bad)))
    for word in says:
        assert word in problems


def test_two_mounts_on_one_path_and_bad_networks():
    problems = mu.check_input(params(mount(), mount(type='nfs', source='/x'),
                                     networks=NETWORKS + [{'name': 'eth-25g'}, {'kind': 'ethernet'}],
                                     rdma_networks=['nope']))
    text = ' | '.join(problems)
    assert 'mounts [0], [1] all mount on /scratch; each path once' in text
    assert 'networks: eth-25g is listed more than once' in text
    assert 'networks[3]: needs a name' in text
    assert "rdma_networks: 'nope' is not one of the networks" in text


def test_roce_network_allows_rdma():
    assert mu.check_input(params(mount(network='eth-25g', transport='rdma'), rdma_networks=['eth-25g'])) == []


def test_transport_auto():
    ib, eth = NETWORKS[1], NETWORKS[0]
    assert mu.transport_of(mount(type='nfs'), ib) == 'rdma'
    assert mu.transport_of(mount(type='lustre'), ib) == 'rdma'
    assert mu.transport_of(mount(type='glusterfs'), ib) == 'tcp'
    assert mu.transport_of(mount(type='nfs'), eth) == 'tcp'
    assert mu.transport_of(mount(type='nfs'), dict(eth, rdma=True)) == 'rdma'
    assert mu.transport_of(mount(type='nfs'), None) == 'tcp'


NODE_NET = {'ifname': 'ibp65s0', 'addresses': ['10.100.3.7/16']}


def test_plans_per_file_system():
    ib = NETWORKS[1]
    g = mu.plan_mount(mount(network='ib-100g', transport='rdma', servers=['a', 'b', 'c']), ib, NODE_NET)
    assert (g['what'], g['fstype'], g['options']) == (
        'a:/scratch', 'glusterfs', ['_netdev', 'transport=rdma', 'backup-volfile-servers=b:c'])
    assert g['device'] == 'sys-subsystem-net-devices-ibp65s0.device'
    n = mu.plan_mount(mount(path='/home', type='nfs', source='/export/home', network='ib-100g',
                            options=['noatime', '_netdev']), ib, NODE_NET)
    assert (n['what'], n['fstype'], n['options']) == (
        'a:/export/home'.replace('a', '10.100.0.10'), 'nfs',
        ['_netdev', 'vers=4.2', 'proto=rdma', 'port=20049', 'noatime'])
    c = mu.plan_mount(mount(path='/ceph', type='cephfs', source=None, servers=['m1', 'm2'], ceph_secret='K',
                            ceph_user='hpc', ceph_fs='cephfs2'), None, None)
    assert (c['what'], c['fstype'], c['device']) == ('m1,m2:/', 'ceph', None)
    assert c['options'] == ['_netdev', 'name=hpc', 'secretfile=/etc/ceph/hpcops-ceph.secret', 'fs=cephfs2']
    assert 'K' not in ' '.join(c['options'])
    lu = mu.plan_mount(mount(path='/lustre', type='lustre', source='work', servers=['10.100.0.30', '10.100.0.31'],
                             network='ib-100g'), ib, NODE_NET)
    assert (lu['what'], lu['lnet']) == ('10.100.0.30@o2ib:10.100.0.31@o2ib:/work', 'o2ib0(ibp65s0)')
    lt = mu.plan_mount(mount(path='/lustre', type='lustre', source='work', network='eth-25g'), NETWORKS[0],
                       {'ifname': 'ens2f0'})
    assert (lt['what'], lt['lnet']) == ('10.100.0.10@tcp:/work', 'tcp0(ens2f0)')
    assert mu.render_lnet([lu, lt]).splitlines()[-1] == 'options lnet networks="o2ib0(ibp65s0),tcp0(ens2f0)"'


def test_units_and_fstab():
    plan = mu.plan_mount(mount(path='/home/shared', type='nfs', source='/export/home', network='ib-100g',
                               automount=True, automount_idle=0), NETWORKS[1], NODE_NET)
    unit = mu.render_mount_unit(plan)
    assert mu.marked_path(unit) == '/home/shared'
    assert 'Where=/home/shared\n' in unit and '[Install]' not in unit   # the automount is what starts it
    auto = mu.render_automount_unit(plan)
    assert 'TimeoutIdleSec=0\n' in auto and 'WantedBy=remote-fs.target' in auto
    entry = mu.render_fstab_entry(plan)
    assert entry.splitlines() == [
        '# hpcops.coe.node_mounts: /home/shared',
        '10.100.0.10:/export/home /home/shared nfs _netdev,vers=4.2,proto=rdma,port=20049,'
        'x-systemd.requires=network-online.target,x-systemd.after=sys-subsystem-net-devices-ibp65s0.device,'
        'x-systemd.automount 0 0']
    others, ours = mu.split_fstab('LABEL=root / ext4 defaults 0 1\n' + entry + '# a comment\n')
    assert others == ['LABEL=root / ext4 defaults 0 1\n', '# a comment\n'] and ours == {'/home/shared': entry}
    assert mu.render_fstab(others, ours) == 'LABEL=root / ext4 defaults 0 1\n# a comment\n' + entry
    assert mu.render_fstab(['no newline'], {}) == 'no newline\n'


def test_node_networks_from_the_networks_role_files():
    links = {'fa:16:3e:00:00:02': 'ens2f0'}
    files = [
        ('etc/systemd/network/50-hpcops-eth-25g.network',
         '# Ansible managed\n# OpenStack network eth-25g, port p1\n[Match]\nMACAddress=FA:16:3E:00:00:02\n'),
        ('etc/systemd/network/50-hpcops-ib-100g.network',
         '# x\n# OpenStack network ib-100g, port p2\n[Match]\nName=ibp65s0\n[Network]\nAddress=10.100.3.7/16\n'),
        ('etc/NetworkManager/system-connections/50-hpcops-eth-10g.nmconnection',
         '# OpenStack network eth-10g, port p3\n[connection]\ninterface-name=ens3\n[ipv4]\naddress1=10.10.0.4/16,10.10.0.1\n'),
        ('etc/systemd/network/50-hpcops-eth-25g.link', '# OpenStack network eth-25g, port p1\n[Match]\n'),
        ('etc/systemd/network/50-hpcops-other.network', '[Match]\nName=x\n'),
    ]
    nets = mu.node_networks(files, links)
    assert sorted(nets) == ['eth-10g', 'eth-25g', 'ib-100g']
    assert nets['eth-25g']['ifname'] == 'ens2f0'
    assert nets['ib-100g'] == {'ifname': 'ibp65s0', 'addresses': ['10.100.3.7/16'],
                               'files': ['etc/systemd/network/50-hpcops-ib-100g.network']}
    assert nets['eth-10g']['addresses'] == ['10.10.0.4/16']
    assert mu.off_network_servers(['10.100.250.1', '10.200.0.1', 'gluster-1'], ['10.100.3.7/16']) == ['10.200.0.1']
    assert mu.off_network_servers(['10.200.0.1'], []) == []


@pytest.mark.parametrize('text, family', [
    ('ID=ubuntu\nID_LIKE=debian\n', 'debian'), ('ID=debian\n', 'debian'),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', 'rhel'), ('ID=fedora\nVARIANT_ID=coreos\n', 'fedora-coreos'),
    ('ID=fedora\nVARIANT_ID=server\n', 'rhel'), ('ID=alpine\n', None), ('', None),
])
def test_os_family(text, family):
    assert mu.os_family(text) == family


def test_packages_per_family():
    plans = [{'path': '/g', 'type': 'glusterfs', 'transport': 'rdma'}, {'path': '/n', 'type': 'nfs', 'transport': 'tcp'},
             {'path': '/n2', 'type': 'nfs', 'transport': 'rdma'}]
    assert mu.packages_for('debian', plans) == (['glusterfs-client', 'nfs-common'], [])
    assert mu.packages_for('rhel', plans) == (['glusterfs-fuse', 'glusterfs-rdma', 'nfs-utils'], [])
    lustre = [{'path': '/l', 'type': 'lustre', 'transport': 'rdma'}]
    assert mu.packages_for('rhel', lustre) == (['lustre-client'], [])
    packages, errors = mu.packages_for('fedora-coreos', lustre)
    assert packages == [] and errors[0].startswith('/l: Fedora CoreOS has no Lustre client')
    assert mu.install_command('fedora-coreos', ['nfs-utils'])[:3] == ['rpm-ostree', 'install', '--idempotent']
    assert mu.install_command('debian', ['nfs-common'])[:2] == ['apt-get', 'install']
    assert mu.install_command('rhel', ['nfs-utils'])[:2] == ['dnf', 'install']
