# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real GlusterFS: Debian's glusterd with one brick on this machine, mounted through
FUSE with exactly the source, type and options of the unit hpcops.coe.node_mounts
wrote (what systemd passes to mount(8) for a mount unit).

Needs root, /dev/fuse, Debian's glusterfs-server and glusterfs-client, and a
non-loopback IPv4 address: glusterd refuses bricks on 127.0.0.1, so the brick and
glusterd use this machine's own address (glusterd listens on it, port 24007).
Each missing piece skips the test and says which.
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NOTE = '# OpenStack network eth-lab, port lab-port'


def own_address():
    """This machine's outgoing IPv4 address (no packet is sent), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(('192.0.2.254', 9))
        address = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if address.startswith('127.') else address


def interface_of(address):
    out = subprocess.run(['ip', '-4', '-o', 'addr'], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3].split('/')[0] == address:
            return fields[1], fields[3]
    return None, None


def why_not():
    if os.geteuid() != 0:
        return 'needs root (glusterd and FUSE mounts)'
    if not os.path.exists('/dev/fuse'):
        return 'no /dev/fuse on this machine'
    for tool in ('glusterd', 'gluster', 'mount.glusterfs', 'ip'):
        if not shutil.which(tool):
            return '%s not installed (Debian: apt-get install glusterfs-server glusterfs-client iproute2)' % tool
    if own_address() is None:
        return 'no non-loopback IPv4 address (glusterd refuses bricks on 127.0.0.1)'
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((own_address(), 24007))
        except OSError:
            return 'port 24007 is taken (another glusterd runs here)'
    return None


class Glusterd(object):
    """glusterd with a private working directory and CLI socket, one brick, stopped at the end."""

    def __init__(self, base, address):
        self.base = base
        self.address = address
        self.work = os.path.join(base, 'glusterd')
        self.sock = os.path.join(base, 'glusterd.socket')
        self.pidfile = os.path.join(base, 'glusterd.pid')
        os.makedirs(self.work)
        self.vol = os.path.join(base, 'glusterd.vol')
        with open(self.vol, 'w') as f:
            f.write('volume management\n    type mgmt/glusterd\n    option working-directory %s\n'
                    '    option transport-type socket\n    option transport.socket.bind-address %s\n'
                    '    option transport.socket.listen-port 24007\n    option ping-timeout 0\n'
                    '    option event-threads 1\nend-volume\n' % (self.work, address))

    def start(self):
        subprocess.run(['glusterd', '-f', self.vol, '-l', os.path.join(self.base, 'glusterd.log'), '-p', self.pidfile,
                        '--xlator-option', '*.glusterd-sockfile=%s' % self.sock], check=True, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.cli('volume', 'list', check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError('glusterd did not answer; log: %s' % self.log())

    def cli(self, *args, check=True):
        proc = subprocess.run(['gluster', '--glusterd-sock=%s' % self.sock, '--mode=script'] + list(args),
                              capture_output=True, text=True, timeout=120, check=False)
        if check:
            assert proc.returncode == 0, '%s: %s %s\n%s' % (args, proc.stdout, proc.stderr, self.log())
        return proc

    def log(self):
        path = os.path.join(self.base, 'glusterd.log')
        if not os.path.exists(path):
            return ''
        with open(path) as f:
            return f.read()[-3000:]

    def stop(self):
        self.cli('volume', 'stop', 'scratch', 'force', check=False)
        pids = []
        for dirpath, _dirs, files in os.walk(self.work):
            pids += [os.path.join(dirpath, n) for n in files if n.endswith('.pid')]
        pids.append(self.pidfile)
        for path in pids:
            try:
                with open(path) as f:
                    os.kill(int(f.read().strip()), 15)
            except (OSError, ValueError):
                pass


@pytest.fixture
def glusterd(tmp_path):
    reason = why_not()
    if reason:
        pytest.skip('real GlusterFS: ' + reason)
    server = Glusterd(str(tmp_path / 'server'), own_address())
    try:
        server.start()
        brick = tmp_path / 'brick'
        brick.mkdir()
        server.cli('volume', 'create', 'scratch', '%s:%s' % (server.address, brick), 'force')
        server.cli('volume', 'start', 'scratch')
        server.brick = str(brick)
        yield server
    finally:
        server.stop()


def node_root(tmp_path, address):
    """A node whose network eth-lab (the networks role's file) is this machine's interface."""
    ifname, cidr = interface_of(address)
    root = tmp_path / 'node'
    (root / 'etc' / 'systemd' / 'network').mkdir(parents=True)
    (root / 'etc' / 'systemd' / 'network' / '50-hpcops-eth-lab.network').write_text(
        '# Ansible managed\n%s\n[Match]\nName=%s\n\n[Network]\nAddress=%s\n' % (NOTE, ifname, cidr))
    return str(root), ifname


def mount_task(root, where, address, os_family='debian', **extra):
    args = {'root': root, 'os_family': os_family, 'networks': [{'name': 'eth-lab'}, {'name': 'ib-lab', 'kind': 'infiniband'}],
            'mounts': [dict({'path': where, 'type': 'glusterfs', 'network': 'eth-lab', 'servers': [address, address],
                             'source': 'scratch'}, **extra)]}
    return '- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Mount\n      hpcops.coe.node_mounts: %s\n' % (
        json.dumps(args))


def unit_fields(path):
    fields = {}
    with open(path) as f:
        for line in f:
            if '=' in line and not line.startswith('#'):
                key, value = line.rstrip('\n').split('=', 1)
                fields[key] = value
    return fields


def mountinfo(where):
    with open('/proc/self/mountinfo') as f:
        return [line.split(' - ')[1].split()[0] for line in f if line.split()[4] == where]


def test_the_written_unit_mounts_a_real_glusterfs_volume(glusterd, playbook, tmp_path):
    root, ifname = node_root(tmp_path, glusterd.address)
    where = str(tmp_path / 'mnt' / 'scratch')
    os.makedirs(where)
    run = playbook(mount_task(root, where, glusterd.address)).assert_ok()
    result = run.task('Mount')
    unit = os.path.join(root, 'etc', 'systemd', 'system', result['mounts'][0]['unit'])
    fields = unit_fields(unit)
    assert fields['Where'] == where and fields['Type'] == 'glusterfs'
    assert fields['After'] == 'network-online.target sys-subsystem-net-devices-%s.device' % ifname
    if shutil.which('systemd-analyze'):
        proc = subprocess.run(['systemd-analyze', 'verify', unit], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr
    # What systemd runs for the unit: mount What Where -t Type -o Options.
    proc = subprocess.run(['mount', fields['What'], fields['Where'], '-t', fields['Type'], '-o', fields['Options']],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr + glusterd.log()
    try:
        assert mountinfo(where) == ['fuse.glusterfs']
        with open(os.path.join(where, 'written-through-fuse'), 'w') as f:
            f.write('hello\n')
        with open(os.path.join(glusterd.brick, 'written-through-fuse')) as f:
            assert f.read() == 'hello\n'
    finally:
        subprocess.run(['umount', where], check=False, timeout=60)
    assert mountinfo(where) == []


def test_a_client_without_the_rdma_transport_is_refused_before_any_unit(playbook, tmp_path):
    """This machine's GlusterFS client (Debian's 10.x) has only the socket transport: an RDMA
    mount on a node with that client fails, naming it, before any unit is written."""
    transports = glob.glob('/usr/lib*/*/glusterfs/*/rpc-transport') + glob.glob('/usr/lib*/glusterfs/*/rpc-transport')
    if not transports:
        pytest.skip('no GlusterFS client installed here (Debian: apt-get install glusterfs-client)')
    if any(os.path.exists(os.path.join(d, 'rdma.so')) for d in transports):
        pytest.skip('the GlusterFS client here has the RDMA transport (%s)' % transports[0])
    root = tmp_path / 'node'
    (root / 'etc' / 'systemd' / 'network').mkdir(parents=True)
    (root / 'etc' / 'systemd' / 'network' / '50-hpcops-ib-lab.network').write_text(
        '# Ansible managed\n# OpenStack network ib-lab, port ib-port\n[Match]\nName=ib0\n')
    os.symlink('/usr', str(root / 'usr'))     # the node's client is this machine's
    where = str(tmp_path / 'mnt' / 'scratch')
    run = playbook(mount_task(str(root), where, '10.100.0.10', network='ib-lab', transport='rdma', os_family='debian'))
    assert run.rc != 0
    msg = run.entry('Mount')['result']['msg']
    assert 'has no RDMA transport' in msg and 'socket.so' in msg and where in msg and 'transport: tcp' in msg
    assert not os.path.exists(str(root / 'etc' / 'systemd' / 'system'))
