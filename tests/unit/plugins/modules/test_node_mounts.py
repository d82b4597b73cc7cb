# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.node_mounts as Ansible runs it, on a temporary tree; and the commands it
runs on a real node (root /), with the commands recorded instead of run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible.module_utils import basic

from ansible_collections.hpcops.coe.plugins.modules import node_mounts
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import run_module

NETWORKS = [{'name': 'ib-100g', 'kind': 'infiniband'}]
GLUSTER = {'path': '/scratch', 'type': 'glusterfs', 'network': 'ib-100g', 'servers': ['10.100.0.10'],
           'source': 'scratch'}


class Node(object):
    """Stands in for the node's commands: records them, answers dpkg-query and systemctl."""

    def __init__(self, installed=()):
        self.installed = set(installed)
        self.commands = []

    def run_command(self, argv, **kwargs):
        """Set on AnsibleModule as the bound method of this node: called with the argv only."""
        self.commands.append(' '.join(argv))
        if argv[0] == 'dpkg-query':
            out = ''.join('%s install ok installed\n' % p for p in argv[4:] if p in self.installed)
            return (0 if out else 1), out, ''
        if argv[:2] == ['apt-get', 'install']:
            self.installed.update(a for a in argv[2:] if not a.startswith('-'))
        return 0, '', ''


def run(monkeypatch, root, live=False, node=None, check=False, **args):
    args = dict({'root': str(root), 'networks': NETWORKS, 'os_family': 'debian'}, **args)
    if node is not None:
        monkeypatch.setattr(basic.AnsibleModule, 'run_command', node.run_command)
    if live:
        # The tree stands in for /: the module behaves as on a running node.
        real = node_mounts.NodeMounts.__init__

        def init(self, module):
            real(self, module)
            self.live = True
        monkeypatch.setattr(node_mounts.NodeMounts, '__init__', init)
    return run_module(node_mounts.main, args, check=check)


@pytest.fixture
def root(tmp_path):
    net = tmp_path / 'etc' / 'systemd' / 'network'
    net.mkdir(parents=True)
    (net / '50-hpcops-ib-100g.network').write_text('# Ansible managed\n# OpenStack network ib-100g, port p\n'
                                                   '[Match]\nName=ibp65s0\n[Network]\nAddress=10.100.0.7/16\n')
    return tmp_path


def test_on_a_real_node_installs_reloads_and_mounts_then_nothing(monkeypatch, root):
    node = Node()
    out = run(monkeypatch, root, live=True, node=node, mounts=[GLUSTER])
    assert not out.failed and out.result['changed']
    assert node.commands == [
        'dpkg-query -W -f ${Package} ${Status}\\n glusterfs-client',
        'apt-get install -y -q --no-install-recommends glusterfs-client',
        'systemctl daemon-reload',
        'systemctl restart scratch.mount']
    assert out.result['packages']['installed'] == ['glusterfs-client']
    assert out.result['commands'] == node.commands[1:]
    # Rerun: installed, files in place; /scratch is not mounted here, so only the start is repeated.
    node.commands = []
    out = run(monkeypatch, root, live=True, node=node, mounts=[GLUSTER])
    assert node.commands[-1] == 'systemctl restart scratch.mount' and 'systemctl daemon-reload' not in node.commands
    assert out.result['files_written'] == []


def test_on_a_real_node_absent_stops_before_removing(monkeypatch, root):
    node = Node(installed=['glusterfs-client'])
    auto = dict(GLUSTER, automount=True)
    run(monkeypatch, root, live=True, node=node, mounts=[auto])
    node.commands = []
    out = run(monkeypatch, root, live=True, node=node, mounts=[dict(auto, state='absent')])
    assert out.result['removed'] == ['/scratch']
    assert node.commands == ['systemctl stop scratch.automount', 'systemctl stop scratch.mount',
                             'systemctl daemon-reload']
    assert os.listdir(str(root / 'etc' / 'systemd' / 'system' / 'remote-fs.target.wants')) == []
    assert sorted(os.listdir(str(root / 'etc' / 'systemd' / 'system'))) == ['remote-fs.target.wants']


class RefusingNode(Node):
    def run_command(self, argv, **kwargs):
        if argv[:2] == ['systemctl', 'restart']:
            self.commands.append(' '.join(argv))
            return 1, '', 'Job for scratch.mount failed.'
        return super(RefusingNode, self).run_command(argv, **kwargs)


def test_a_failing_command_names_itself(monkeypatch, root):
    out = run(monkeypatch, root, live=True, node=RefusingNode(installed=['glusterfs-client']), mounts=[GLUSTER])
    assert out.failed and 'systemctl restart scratch.mount failed (rc 1): Job for scratch.mount failed.' in \
        out.result['msg']


def test_check_mode_on_a_real_node_runs_nothing(monkeypatch, root):
    node = Node()
    out = run(monkeypatch, root, live=True, node=node, check=True, mounts=[GLUSTER])
    assert out.result['changed'] and node.commands == ['dpkg-query -W -f ${Package} ${Status}\\n glusterfs-client']
    assert not os.path.exists(str(root / 'etc' / 'systemd' / 'system'))


def test_under_another_root_nothing_runs_and_the_secret_stays_private(monkeypatch, root):
    node = Node()
    ceph = {'path': '/ceph', 'type': 'cephfs', 'network': 'ib-100g', 'servers': ['10.100.0.21'],
            'ceph_secret': 'AQBunit=='}
    out = run(monkeypatch, root, node=node, mounts=[ceph], _ansible_diff=True)
    assert node.commands == []
    assert out.result['commands'] == ['apt-get install -y -q --no-install-recommends ceph-common',
                                      'systemctl daemon-reload', 'systemctl restart ceph.mount']
    secret = root / 'etc' / 'ceph' / 'hpcops-ceph.secret'
    assert stat.S_IMODE(os.stat(str(secret)).st_mode) == 0o600 and secret.read_text() == 'AQBunit==\n'
    assert 'AQBunit' not in json.dumps(out.result)
    assert [d['after'] for d in out.result['diff'] if d['after_header'].endswith('.secret')] == ['<secret>\n']
    again = run(monkeypatch, root, node=node, mounts=[ceph])
    assert not again.result['changed'] and again.result['files_written'] == []


def test_a_node_without_the_network_is_refused_before_any_change(monkeypatch, tmp_path):
    out = run(monkeypatch, tmp_path, mounts=[GLUSTER])
    assert out.failed and 'network ib-100g is not configured on this node' in out.result['msg']
    assert 'networks configured here: none' in out.result['msg']
    assert os.listdir(str(tmp_path)) == []


def test_unknown_os_family_says_what_to_set(monkeypatch, root):
    (root / 'etc' / 'os-release').write_text('ID=alpine\n')
    out = run(monkeypatch, root, mounts=[GLUSTER], os_family='auto')
    assert out.failed and 'set os_family (valid: debian, fedora-coreos, rhel)' in out.result['msg']
