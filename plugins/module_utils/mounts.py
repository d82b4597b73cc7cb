# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared-filesystem mounts on a node: input checks, the node's networks, and the
systemd units or fstab lines that mount GlusterFS, NFS, CephFS and Lustre.

Everything here is pure (paths in, text out) so that it can be tested without a
node; hpcops.coe.node_mounts reads and writes the files and runs the commands.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re

FS_TYPES = ('glusterfs', 'nfs', 'cephfs', 'lustre')
TRANSPORTS = ('auto', 'tcp', 'rdma')
NFS_VERSIONS = ('4', '4.0', '4.1', '4.2')
OS_FAMILIES = ('auto', 'debian', 'fedora-coreos', 'rhel')
METHODS = ('systemd', 'fstab')

# First line of every file this collection writes for a mount: what exact mode
# looks for before it removes anything.
MARKER = '# hpcops.coe.node_mounts:'
SECRET_DIR = 'etc/ceph'
SECRET_PREFIX = 'hpcops-'
LNET_CONF = 'etc/modprobe.d/hpcops-lnet.conf'
NFS_RDMA_PORT = 20049

# The client packages per OS family and file system. None: no client for that
# family; the text says why and what to do instead.
PACKAGES = {
    'debian': {'glusterfs': ['glusterfs-client'], 'nfs': ['nfs-common'], 'cephfs': ['ceph-common'],
               'lustre': ['lustre-client-utils']},
    'rhel': {'glusterfs': ['glusterfs-fuse'], 'nfs': ['nfs-utils'], 'cephfs': ['ceph-common'],
             'lustre': ['lustre-client']},
    'fedora-coreos': {'glusterfs': ['glusterfs-fuse'], 'nfs': ['nfs-utils'], 'cephfs': ['ceph-common'],
                      'lustre': None},
}
UNAVAILABLE = {
    ('fedora-coreos', 'lustre'): 'Fedora CoreOS has no Lustre client: its kernel modules are built outside the '
                                 'kernel and cannot be layered onto an rpm-ostree image; mount Lustre from nodes '
                                 'running a RHEL-like or Ubuntu image, or re-export it over NFS',
}
# Extra packages for the GlusterFS RDMA transport, where the family has them.
GLUSTER_RDMA_PACKAGES = {'rhel': ['glusterfs-rdma'], 'fedora-coreos': ['glusterfs-rdma'], 'debian': []}
MANAGERS = {'debian': 'apt', 'rhel': 'dnf', 'fedora-coreos': 'rpm-ostree'}

_SAFE_OPTION = re.compile(r'^[A-Za-z0-9_.:=/@+\-]+$')
_SAFE_SOURCE = re.compile(r'^[A-Za-z0-9_.:/@+\-]+$')
_SAFE_SERVER = re.compile(r'^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.:\-]+)$')
_SAFE_USER = re.compile(r'^[A-Za-z0-9_.\-]+$')
_ESCAPE_KEEP = re.compile(r'[A-Za-z0-9:_.]')


# --------------------------------------------------------------------------- names

def escape_path(path):
    """The systemd escaping of a path (as `systemd-escape --path`): a mount unit's name
    must be the escaped form of its Where=."""
    trimmed = '/'.join(p for p in path.split('/') if p)
    if not trimmed:
        return '-'
    out = []
    for i, ch in enumerate(trimmed):
        if ch == '/':
            out.append('-')
        elif _ESCAPE_KEEP.match(ch) and not (i == 0 and ch == '.'):
            out.append(ch)
        else:
            out.extend('\\x%02x' % b for b in ch.encode('utf-8'))
    return ''.join(out)


def unit_names(path):
    base = escape_path(path)
    return base + '.mount', base + '.automount'


def slug(name):
    return re.sub(r'[^a-z0-9_.-]+', '-', name.lower())


def secret_file(path):
    """Where the CephFS secret of the mount at `path` goes, relative to the node's root."""
    return os.path.join(SECRET_DIR, SECRET_PREFIX + escape_path(path) + '.secret')


# --------------------------------------------------------------------------- input

def _is_address(text):
    try:
        ipaddress.ip_address(text.strip('[]'))
        return True
    except ValueError:
        return False


def check_input(params):
    """Every problem with the module's parameters, each naming the input and what is valid."""
    problems = []
    networks = []
    for i, n in enumerate(params['networks']):
        if not isinstance(n.get('name'), str) or not n['name']:
            problems.append("networks[%d]: needs a name (the Neutron network's, as in networks_list)" % i)
        elif n.get('kind', 'ethernet') not in ('ethernet', 'infiniband'):
            problems.append("networks[%d] (%s): kind %r is not one of ethernet, infiniband" % (i, n['name'], n['kind']))
        else:
            networks.append(dict(n, rdma=n.get('kind') == 'infiniband' or n['name'] in params['rdma_networks']))
    names = [n['name'] for n in networks]
    for name in sorted(set(n for n in names if names.count(n) > 1)):
        problems.append("networks: %s is listed more than once" % name)
    by_name = dict((n['name'], n) for n in networks)
    for name in params['rdma_networks']:
        if name not in by_name:
            problems.append("rdma_networks: %r is not one of the networks; valid: %s"
                            % (name, ', '.join(sorted(by_name)) or 'none are defined'))
    paths = {}
    for i, m in enumerate(params['mounts']):
        where = 'mounts[%d] (%s)' % (i, m.get('path'))
        path = m['path']
        if not path.startswith('/') or os.path.normpath(path) != path or path == '/' or re.search(r'\s', path):
            problems.append("%s: path must be an absolute, normalised path other than / without spaces, "
                            "such as /mnt/scratch" % where)
        paths.setdefault(path, []).append(i)
        fs = m['type']
        if m['network'] and m['network'] not in by_name:
            problems.append("%s: network %r is not one of the site's networks; valid: %s"
                            % (where, m['network'], ', '.join(sorted(by_name)) or 'none are defined'))
        transport = m['transport']
        net = by_name.get(m['network'])
        if transport == 'rdma':
            if fs == 'cephfs':
                problems.append("%s: transport rdma is not available for cephfs (the kernel client speaks tcp); "
                                "valid: auto, tcp" % where)
            elif not m['network']:
                problems.append("%s: transport rdma needs network set to an RDMA-capable network; valid: %s"
                                % (where, ', '.join(sorted(n for n in by_name if rdma_capable(by_name[n])))
                                   or 'none of the site networks is RDMA-capable'))
            elif net is not None and not rdma_capable(net):
                problems.append("%s: transport rdma over network %r, which is plain %s without RDMA; "
                                "valid: tcp or auto there, or an RDMA-capable network (%s)"
                                % (where, m['network'], net.get('kind') or 'ethernet',
                                   ', '.join(sorted(n for n in by_name if rdma_capable(by_name[n]))) or 'none'))
        if not m['servers']:
            problems.append("%s: servers must list at least one server address" % where)
        for s in m['servers']:
            if not _SAFE_SERVER.match(s or ''):
                problems.append("%s: server %r is not a host name or an IP address" % (where, s))
        if fs == 'nfs' and len(m['servers']) > 1:
            problems.append("%s: NFS mounts one server; got %d (%s)"
                            % (where, len(m['servers']), ', '.join(m['servers'])))
        if m['source'] is not None and not _SAFE_SOURCE.match(m['source']):
            problems.append("%s: source %r may hold letters, digits and _ . : / @ + - only" % (where, m['source']))
        if fs in ('glusterfs', 'lustre') and not m['source']:
            problems.append("%s: source is required for %s (the %s)"
                            % (where, fs, 'volume name' if fs == 'glusterfs' else 'file system name'))
        if fs == 'nfs' and not (m['source'] or '').startswith('/'):
            problems.append("%s: source must be the export path for nfs, such as /export/home" % where)
        if m['nfs_version'] not in NFS_VERSIONS:
            problems.append("%s: nfs_version %r is not supported; valid: %s"
                            % (where, m['nfs_version'], ', '.join(NFS_VERSIONS)))
        if fs == 'cephfs':
            if not m['ceph_secret']:
                problems.append("%s: cephfs needs ceph_secret (the key of ceph_user, from "
                                "'ceph auth get-key client.<user>')" % where)
            elif re.search(r'[\s\0]', m['ceph_secret']):
                problems.append("%s: ceph_secret must be a single word (the base64 key), without spaces or "
                                "line breaks" % where)
            if not _SAFE_USER.match(m['ceph_user'] or ''):
                problems.append("%s: ceph_user %r is not a Ceph client name such as admin" % (where, m['ceph_user']))
            if m['ceph_fs'] is not None and not _SAFE_USER.match(m['ceph_fs']):
                problems.append("%s: ceph_fs %r is not a CephFS file system name" % (where, m['ceph_fs']))
        elif m['ceph_secret']:
            problems.append("%s: ceph_secret is only for cephfs mounts, not %s" % (where, fs))
        for opt in m['options']:
            if not _SAFE_OPTION.match(opt or ''):
                problems.append("%s: option %r must be one mount option such as noatime or rsize=1048576 "
                                "(no commas, spaces or quotes)" % (where, opt))
        if m['automount_idle'] < 0:
            problems.append("%s: automount_idle %d must be 0 (never unmount) or more seconds"
                            % (where, m['automount_idle']))
    for path, where in sorted(paths.items()):
        if len(where) > 1:
            problems.append("mounts %s all mount on %s; each path once"
                            % (', '.join('[%d]' % i for i in where), path))
    return problems


def rdma_capable(network):
    return bool(network.get('rdma')) or network.get('kind') == 'infiniband'


def transport_of(mount, network):
    """tcp or rdma: auto is rdma for NFS and Lustre on an RDMA-capable network. GlusterFS
    stays on tcp unless asked: a volume's transport is set on its servers."""
    if mount['transport'] != 'auto':
        return mount['transport']
    if network is not None and rdma_capable(network) and mount['type'] in ('nfs', 'lustre'):
        return 'rdma'
    return 'tcp'


# --------------------------------------------------------------------------- the node

def os_family(os_release_text):
    """debian, fedora-coreos or rhel from the text of os-release, else None."""
    fields = {}
    for line in (os_release_text or '').splitlines():
        if '=' in line and not line.startswith('#'):
            key, value = line.split('=', 1)
            fields[key.strip()] = value.strip().strip('"\'')
    ids = [fields.get('ID', '')] + fields.get('ID_LIKE', '').split()
    if fields.get('ID') == 'fedora' and fields.get('VARIANT_ID') == 'coreos' or fields.get('ID') == 'fcos':
        return 'fedora-coreos'
    if 'debian' in ids or 'ubuntu' in ids:
        return 'debian'
    if any(i in ('rhel', 'centos', 'fedora', 'rocky', 'almalinux') for i in ids):
        return 'rhel'
    return None


def _comment_network(lines):
    for line in lines[:4]:
        match = re.match(r'^#\s*OpenStack network (\S+?),? port ', line)
        if match:
            return match.group(1)
    return None


def _values(lines, *keys):
    out = []
    for line in lines:
        if '=' in line and not line.lstrip().startswith(('#', ';')):
            key, value = line.split('=', 1)
            if key.strip() in keys:
                out.append(value.strip())
    return out


def parse_network_file(name, text, links):
    """(network name, {ifname, addresses, file}) of one file of the networks role, else None.

    `links` maps hardware addresses (lower case) to link names, for files that match
    their interface by MAC address."""
    lines = text.splitlines()
    network = _comment_network(lines)
    if network is None:
        return None
    ifnames = _values(lines, 'Name', 'interface-name')
    macs = [m.lower() for m in _values(lines, 'MACAddress', 'mac-address')]
    ifname = ifnames[0] if ifnames else next((links[m] for m in macs if m in links), None)
    addresses = _values(lines, 'Address') + [a.split(',')[0] for a in _values(
        lines, 'address1', 'address2', 'address3', 'address4')]
    return network, {'ifname': ifname, 'addresses': addresses, 'file': name}


def node_networks(files, links):
    """{network: {ifname, addresses, files}} from [(name, text)] of the node's network files."""
    out = {}
    for name, text in files:
        parsed = parse_network_file(name, text, links)
        if parsed is None:
            continue
        network, info = parsed
        entry = out.setdefault(network, {'ifname': None, 'addresses': [], 'files': []})
        entry['ifname'] = entry['ifname'] or info['ifname']
        entry['addresses'].extend(info['addresses'])
        entry['files'].append(name)
    return out


def off_network_servers(servers, addresses):
    """Servers given as IP addresses outside every subnet of the node's `addresses` on the network."""
    subnets = []
    for a in addresses:
        try:
            subnets.append(ipaddress.ip_interface(a).network)
        except ValueError:
            continue
    if not subnets:
        return []
    out = []
    for s in servers:
        if _is_address(s):
            ip = ipaddress.ip_address(s.strip('[]'))
            if not any(ip.version == n.version and ip in n for n in subnets):
                out.append(s)
    return out


# --------------------------------------------------------------------------- packages

def packages_for(family, mounts):
    """(packages, errors) the clients of `mounts` (planned) need on a node of `family`."""
    packages, errors = [], []
    for m in mounts:
        wanted = PACKAGES[family][m['type']]
        if wanted is None:
            errors.append('%s: %s' % (m['path'], UNAVAILABLE[(family, m['type'])]))
            continue
        if m['type'] == 'glusterfs' and m['transport'] == 'rdma':
            wanted = wanted + GLUSTER_RDMA_PACKAGES[family]
        for p in wanted:
            if p not in packages:
                packages.append(p)
    return packages, errors


def install_command(family, packages):
    if family == 'debian':
        return ['apt-get', 'install', '-y', '-q', '--no-install-recommends'] + packages
    if family == 'rhel':
        return ['dnf', 'install', '-y', '-q'] + packages
    # Layered on the booted deployment and applied live: no reboot needed for user-space clients.
    return ['rpm-ostree', 'install', '--idempotent', '--allow-inactive', '--apply-live'] + packages


def installed_command(family, packages):
    if family == 'debian':
        return ['dpkg-query', '-W', '-f', '${Package} ${Status}\\n'] + packages
    return ['rpm', '-q', '--qf', '%{NAME} installed\\n'] + packages


# --------------------------------------------------------------------------- rendering

def plan_mount(mount, network, node_net):
    """What the node gets for one mount: source, type, options and ordering."""
    fs = mount['type']
    transport = transport_of(mount, network)
    servers = mount['servers']
    options = ['_netdev']
    if fs == 'glusterfs':
        what = '%s:/%s' % (servers[0], mount['source'].lstrip('/'))
        kind = 'glusterfs'
        if transport == 'rdma':
            options.append('transport=rdma')
        if len(servers) > 1:
            options.append('backup-volfile-servers=%s' % ':'.join(servers[1:]))
    elif fs == 'nfs':
        what = '%s:%s' % (servers[0], mount['source'])
        kind = 'nfs'
        options.append('vers=%s' % mount['nfs_version'])
        if transport == 'rdma':
            options.extend(['proto=rdma', 'port=%d' % NFS_RDMA_PORT])
        else:
            options.append('proto=tcp')
    elif fs == 'cephfs':
        what = '%s:%s' % (','.join(servers), mount['source'] or '/')
        kind = 'ceph'
        options.extend(['name=%s' % mount['ceph_user'], 'secretfile=/%s' % secret_file(mount['path'])])
        if mount['ceph_fs']:
            options.append('fs=%s' % mount['ceph_fs'])
    else:
        lnd = 'o2ib' if transport == 'rdma' else 'tcp'
        what = '%s:/%s' % (':'.join('%s@%s' % (s, lnd) for s in servers), mount['source'].lstrip('/'))
        kind = 'lustre'
    options.extend(o for o in mount['options'] if o not in options)
    ifname = (node_net or {}).get('ifname')
    device = 'sys-subsystem-net-devices-%s.device' % escape_path(ifname) if ifname else None
    mount_unit, automount_unit = unit_names(mount['path'])
    return {'path': mount['path'], 'type': fs, 'fstype': kind, 'what': what, 'options': options,
            'transport': transport, 'network': mount['network'] or None, 'interface': ifname, 'device': device,
            'automount': mount['automount'], 'automount_idle': mount['automount_idle'],
            'unit': mount_unit, 'automount_unit': automount_unit if mount['automount'] else None,
            'lnet': ('%s(%s)' % ('o2ib0' if transport == 'rdma' else 'tcp0', ifname)) if fs == 'lustre' and ifname
            else None}


def _description(plan):
    on = ('network %s' % plan['network']) if plan['network'] else 'the primary network'
    return '%s %s on %s over %s' % (plan['type'], plan['what'], on, plan['transport'])


def render_mount_unit(plan):
    after = ['network-online.target'] + ([plan['device']] if plan['device'] else [])
    lines = [
        '%s %s' % (MARKER, plan['path']),
        '# Written by hpcops.coe.node_mounts; changes made here are overwritten.',
        '[Unit]',
        'Description=%s' % _description(plan),
        # The mount needs its network's interface up, not just any network.
        'After=%s' % ' '.join(after),
        'Wants=%s' % ' '.join(after),
        '',
        '[Mount]',
        'What=%s' % plan['what'],
        'Where=%s' % plan['path'],
        'Type=%s' % plan['fstype'],
        'Options=%s' % ','.join(plan['options']),
        # A server that does not answer must not hold up boot or shutdown for long.
        'TimeoutSec=90',
    ]
    if not plan['automount']:
        lines += ['', '[Install]', 'WantedBy=remote-fs.target']
    return '\n'.join(lines) + '\n'


def render_automount_unit(plan):
    lines = [
        '%s %s' % (MARKER, plan['path']),
        '# Written by hpcops.coe.node_mounts; changes made here are overwritten.',
        '[Unit]',
        'Description=Automount of %s' % _description(plan),
        '',
        '[Automount]',
        'Where=%s' % plan['path'],
        'TimeoutIdleSec=%d' % plan['automount_idle'],
        '',
        '[Install]',
        'WantedBy=remote-fs.target',
    ]
    return '\n'.join(lines) + '\n'


def render_fstab_entry(plan):
    """Two lines: the marker, then the fstab entry (systemd's fstab generator reads the x-systemd options)."""
    options = list(plan['options'])
    options.append('x-systemd.requires=network-online.target')
    if plan['device']:
        options.append('x-systemd.after=%s' % plan['device'])
    if plan['automount']:
        options.append('x-systemd.automount')
        if plan['automount_idle']:
            options.append('x-systemd.idle-timeout=%d' % plan['automount_idle'])
    return '%s %s\n%s %s %s %s 0 0\n' % (MARKER, plan['path'], plan['what'], plan['path'], plan['fstype'],
                                         ','.join(options))


def split_fstab(text):
    """(lines not ours, {path: entry text}) of an fstab: our entries are a marker line and the line after it."""
    others, ours = [], {}
    lines = (text or '').splitlines(True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(MARKER) and i + 1 < len(lines):
            ours[line[len(MARKER):].strip()] = line + lines[i + 1]
            i += 2
            continue
        others.append(line)
        i += 1
    return others, ours


def render_fstab(others, entries):
    text = ''.join(others)
    if text and not text.endswith('\n'):
        text += '\n'
    return text + ''.join(entries[p] for p in sorted(entries))


def render_lnet(plans):
    networks = []
    for p in plans:
        if p['lnet'] and p['lnet'] not in networks:
            networks.append(p['lnet'])
    if not networks:
        return None
    return ('%s lnet\n# Written by hpcops.coe.node_mounts: the LNet networks of the Lustre mounts.\n'
            'options lnet networks="%s"\n' % (MARKER, ','.join(networks)))


def marked_path(text):
    """The mount path a file written by this module names on its first line, else None."""
    first = (text or '').split('\n', 1)[0]
    if first.startswith(MARKER):
        return first[len(MARKER):].strip()
    return None
