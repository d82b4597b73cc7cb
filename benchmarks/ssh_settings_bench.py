# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the SSH settings of examples/real-site/ansible.cfg do to a node-side play, over real SSH.

Starts its own sshd on loopback (a free port, one listen address per host, 127.0.0.2 and up, so
every host gets its own SSH connection and control socket as real nodes would), with keys made for
the run in a temporary directory, and runs the same play (six small tasks per host: ping, command,
stat, copy, file, ping) on ``--hosts`` hosts with:

- no connection reuse and no pipelining (``ControlMaster=no``),
- ControlMaster/ControlPersist (one SSH connection per host kept open between tasks),
- ControlPersist and pipelining (the module goes through the open session, nothing is copied first),
- the same with ``--forks 5`` (Ansible's default) instead of one fork per host.

Loopback has no network latency, so what is measured here is the cost of the SSH handshakes,
the file transfers and the processes on this machine; a real network adds a round trip or more
per saved step, so the savings on real nodes are larger than these. Prints wall seconds; never
pass/fail. Needs sshd (the openssh-server package); says so and stops when it is missing.

    .venv/bin/python benchmarks/ssh_settings_bench.py              # 24 hosts
    .venv/bin/python benchmarks/ssh_settings_bench.py --hosts 48
"""

import argparse
import getpass
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

PLAY = [{'name': 'Node-side tasks', 'hosts': 'all', 'gather_facts': False, 'tasks': [
    {'name': 'ping', 'ansible.builtin.ping': {}},
    {'name': 'command', 'ansible.builtin.command': 'true', 'changed_when': False},
    {'name': 'stat', 'ansible.builtin.stat': {'path': '/etc/hostname'}},
    {'name': 'copy', 'ansible.builtin.copy': {'content': '{{ inventory_hostname }}\n',
                                              'dest': '{{ bench_dir }}/{{ inventory_hostname }}', 'mode': '0600'}},
    {'name': 'file', 'ansible.builtin.file': {'path': '{{ bench_dir }}/{{ inventory_hostname }}', 'state': 'absent'}},
    {'name': 'ping again', 'ansible.builtin.ping': {}},
]}]

VARIANTS = (
    ('no connection reuse, no pipelining', '-o ControlMaster=no', False, None),
    ('ControlMaster + ControlPersist', '-o ControlMaster=auto -o ControlPersist=60s', False, None),
    ('ControlPersist + pipelining', '-o ControlMaster=auto -o ControlPersist=60s', True, None),
    ('ControlPersist + pipelining, forks 5', '-o ControlMaster=auto -o ControlPersist=60s', True, 5),
)


def sshd_binary():
    return shutil.which('sshd') or next((p for p in ('/usr/sbin/sshd', '/usr/local/sbin/sshd') if os.path.exists(p)),
                                        None)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_sshd(sshd, work, hosts):
    for name in ('host_key', 'client_key'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', os.path.join(work, name)], check=True)
    shutil.copy(os.path.join(work, 'client_key.pub'), os.path.join(work, 'authorized_keys'))
    port = free_port()
    config = os.path.join(work, 'sshd_config')
    with open(config, 'w') as f:
        f.write('Port %d\n' % port)
        for i in range(hosts):
            f.write('ListenAddress 127.0.0.%d\n' % (i + 2))
        f.write('HostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\nPidFile {0}/sshd.pid\n'
                'PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n'
                'PermitRootLogin prohibit-password\nMaxStartups 500:30:1000\nMaxSessions 100\n'.format(work))
    if os.geteuid() == 0:
        os.makedirs('/run/sshd', exist_ok=True)  # sshd's privilege separation directory
    subprocess.run([sshd, '-f', config, '-E', os.path.join(work, 'sshd.log')], check=True)
    for _attempt in range(50):
        if os.path.exists(os.path.join(work, 'sshd.pid')):
            break
        time.sleep(0.1)
    return port


def stop_masters(control_dir):
    """Ends the ControlPersist masters a run left (each by its socket)."""
    for sock in glob.glob(os.path.join(control_dir, '*')):
        subprocess.run(['ssh', '-o', 'ControlPath=' + sock, '-O', 'exit', 'bench'], capture_output=True, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--hosts', type=int, default=24, help='hosts (SSH connections to loopback), up to 250')
    args = parser.parse_args()
    sshd = sshd_binary()
    if not sshd:
        print('ssh settings bench: sshd not found (install openssh-server); nothing measured')
        return
    work = tempfile.mkdtemp(prefix='ssh-bench-')
    os.chmod(work, 0o700)
    port = start_sshd(sshd, work, args.hosts)
    try:
        ssh_common = '-o StrictHostKeyChecking=no -o UserKnownHostsFile=%s/known_hosts' % work
        inventory = {'all': {'vars': {'ansible_port': port, 'ansible_user': getpass.getuser(),
                                      'ansible_ssh_private_key_file': os.path.join(work, 'client_key'),
                                      'ansible_ssh_common_args': ssh_common,
                                      'ansible_python_interpreter': sys.executable, 'bench_dir': work},
                             'hosts': dict(('node%03d' % i, {'ansible_host': '127.0.0.%d' % (i + 2)})
                                           for i in range(args.hosts))}}
        with open(os.path.join(work, 'inventory.yml'), 'w') as f:
            yaml.safe_dump(inventory, f)
        with open(os.path.join(work, 'play.yml'), 'w') as f:
            yaml.safe_dump(PLAY, f, sort_keys=False)
        playbook = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
        print('ssh settings: %d hosts over SSH to a loopback sshd, %d tasks per host (%d cores, shared)' % (
            args.hosts, len(PLAY[0]['tasks']), os.cpu_count()))
        for label, ssh_args, pipelining, forks in VARIANTS:
            control_dir = tempfile.mkdtemp(prefix='cp-', dir=work)
            env = dict(os.environ, ANSIBLE_SSH_ARGS=ssh_args, ANSIBLE_PIPELINING=str(pipelining),
                       ANSIBLE_SSH_CONTROL_PATH_DIR=control_dir, ANSIBLE_HOST_KEY_CHECKING='False',
                       ANSIBLE_NOCOLOR='1')
            cmd = [playbook, '-i', os.path.join(work, 'inventory.yml'), os.path.join(work, 'play.yml'),
                   '--forks', str(forks or args.hosts)]
            start = time.monotonic()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            seconds = time.monotonic() - start
            stop_masters(control_dir)
            if proc.returncode:
                print('  %-40s failed (rc %d): %s' % (label, proc.returncode, proc.stdout[-600:]))
                continue
            print('  %-40s forks %3d  %6.1f s  (%.3f s per host-task)' % (
                label, forks or args.hosts, seconds, seconds / (args.hosts * len(PLAY[0]['tasks']))))
    finally:
        with open(os.path.join(work, 'sshd.pid')) as f:
            os.kill(int(f.read().strip()), 15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
