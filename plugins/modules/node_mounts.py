#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_mounts
short_description: Shared file systems (GlusterFS, NFS, CephFS, Lustre) mounted on a node over the site's networks
version_added: "0.2.0"
author: hpcops.coe maintainers (@hpcops)
description:
  - Runs on the node. In one module run it checks every mount against the site's
    networks and the node's own network configuration, installs the client
    packages, writes a systemd mount unit (or an fstab entry) per file system,
    and mounts or unmounts them.
  - Each mount names the site network it uses (O(mounts[].network)). The module
    finds that network among the files the M(hpcops.coe.node_network_files)
    writes for the networks role (their first lines name the OpenStack network)
    and fails, before writing anything, when the node has no configuration for it.
    The mount is ordered after the network's interface (its
    C(sys-subsystem-net-devices-*.device) unit) as well as C(network-online.target).
  - Every file it writes starts with a C(# hpcops.coe.node_mounts:) line naming the
    mount path. That line is how O(state=exact) and O(mounts[].state=absent) find
    what this module made; other units and fstab lines are never touched.
  - Commands (package installation, C(systemctl daemon-reload), starting and
    stopping the mounts) run only when O(root) is V(/). Under any other root (a
    node image, a test tree) the files are written and the commands are listed in
    RV(commands) without being run.
options:
  root:
    description:
      - The node's file system root, V(/) on a running node. Another directory
        writes into a node image or a test tree laid out the same way.
    type: path
    default: /
  networks:
    description:
      - The site's networks a mount may name, as the networks role's
        C(networks_list) gives them (other keys such as C(mtu) are ignored).
      - Each needs C(name); C(kind) V(infiniband) marks a network that carries
        RDMA, C(kind) V(ethernet) (the default) one that does not.
    type: list
    elements: dict
    default: []
  rdma_networks:
    description:
      - Names of Ethernet networks of O(networks) that carry RDMA (RoCE).
    type: list
    elements: str
    default: []
  mounts:
    description: The file systems the node should mount.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Mount point, an absolute path. Each path once.
        type: str
        required: true
      type:
        description: The file system.
        type: str
        required: true
        choices: [glusterfs, nfs, cephfs, lustre]
      servers:
        description:
          - Server addresses on O(mounts[].network). GlusterFS takes the first as
            the volfile server and the others as backup volfile servers; CephFS
            takes the monitors; Lustre the MGS NIDs (failover pairs); NFS exactly one.
        type: list
        elements: str
        required: true
      source:
        description:
          - GlusterFS volume name, NFS export path, CephFS path inside the file
            system (default V(/)), or Lustre file system name.
        type: str
      network:
        description:
          - The site network (a C(name) of O(networks)) the servers are reached on.
            Empty uses the node's primary network and checks nothing.
        type: str
        default: ""
      transport:
        description:
          - V(rdma) mounts GlusterFS with C(transport=rdma), NFS with
            C(proto=rdma), Lustre over C(o2ib). It needs an RDMA-capable network.
          - V(auto) is V(rdma) for NFS and Lustre on an RDMA-capable network and
            V(tcp) otherwise; GlusterFS stays on V(tcp) unless asked, because a
            volume's transport is chosen on its servers.
        type: str
        choices: [auto, tcp, rdma]
        default: auto
      nfs_version:
        description: NFS version (C(vers=)).
        type: str
        choices: ["4", "4.0", "4.1", "4.2"]
        default: "4.2"
      options:
        description: Further mount options, one per element, such as V(noatime).
        type: list
        elements: str
        default: []
      automount:
        description: Mount on first access (a systemd automount unit) rather than at boot.
        type: bool
        default: false
      automount_idle:
        description: With O(mounts[].automount), seconds idle before unmounting; V(0) never.
        type: int
        default: 600
      ceph_user:
        description: CephFS client name (without C(client.)).
        type: str
        default: admin
      ceph_secret:
        description:
          - CephFS key of O(mounts[].ceph_user). Written to a file readable by
            root only (mode C(0600)) and named by the C(secretfile=) option; never
            in a unit, in fstab or in the module's output.
        type: str
      ceph_fs:
        description: CephFS file system name, when the cluster has several.
        type: str
      state:
        description: V(absent) unmounts the file system and removes what this module wrote for it.
        type: str
        choices: [present, absent]
        default: present
  state:
    description:
      - V(present) leaves mounts this module made earlier and that are no longer
        listed. V(exact) unmounts and removes them.
    type: str
    choices: [present, exact]
    default: present
  method:
    description:
      - V(systemd) writes mount (and automount) units to C(etc/systemd/system) and
        enables them for C(remote-fs.target). V(fstab) writes C(etc/fstab) entries
        with C(x-systemd) options instead, for operators who keep mounts there.
    type: str
    choices: [systemd, fstab]
    default: systemd
  os_family:
    description:
      - Which packages and package manager; V(auto) reads C(etc/os-release) under O(root).
        V(debian) (Debian, Ubuntu; apt), V(rhel) (RHEL-like, Fedora; dnf),
        V(fedora-coreos) (packages layered with rpm-ostree).
    type: str
    choices: [auto, debian, fedora-coreos, rhel]
    default: auto
  install_packages:
    description: Install the clients the mounts need (only when O(root) is V(/)).
    type: bool
    default: true
  check_networks:
    description:
      - Fail when a mount's network has no configuration on the node. V(false)
        for nodes whose extra networks are configured by other means.
    type: bool
    default: true
  network_dirs:
    description: Where the node's network configuration files are, relative to O(root).
    type: list
    elements: str
    default: [etc/systemd/network, etc/NetworkManager/system-connections]
  network_file_prefix:
    description: Name prefix of the networks role's files (its C(networks_file_prefix)).
    type: str
    default: 50-hpcops-
notes:
  - The GlusterFS RDMA transport was dropped from newer GlusterFS releases (the
    Debian and Ubuntu clients ship only the socket transport). When the client
    installed under O(root) lacks it, an O(mounts[].transport=rdma) GlusterFS
    mount fails before any unit is written.
seealso:
  - module: hpcops.coe.node_network_files
  - module: hpcops.coe.node_network_info
extends_documentation_fragment:
  - hpcops.coe.attributes
attributes:
  check_mode:
    support: full
    details: Nothing is written or run.
  diff_mode:
    support: full
    details: Each file before and after; a CephFS secret shows as V(<secret>).
  platform:
    platforms: linux
'''

EXAMPLES = r'''
- name: GlusterFS over the 100G InfiniBand network and NFS over 25G Ethernet
  hpcops.coe.node_mounts:
    networks:
      - {name: eth-25g}
      - {name: ib-100g, kind: infiniband}
    mounts:
      - path: /scratch
        type: glusterfs
        network: ib-100g
        transport: rdma
        servers: [10.100.250.1, 10.100.250.2, 10.100.250.3]
        source: scratch
      - path: /home
        type: nfs
        network: eth-25g
        servers: [10.2.0.5]
        source: /export/home
        options: [noatime]

- name: CephFS with its key in a root-only file, mounted on first access
  hpcops.coe.node_mounts:
    networks:
      - {name: eth-25g}
    mounts:
      - path: /ceph/projects
        type: cephfs
        network: eth-25g
        servers: [10.2.0.21, 10.2.0.22, 10.2.0.23]
        source: /volumes/projects
        ceph_user: hpc
        ceph_secret: "{{ vault_ceph_hpc_key }}"
        automount: true

- name: Only these mounts; remove the ones made earlier and no longer listed
  hpcops.coe.node_mounts:
    state: exact
    networks:
      - {name: ib-100g, kind: infiniband}
    mounts:
      - {path: /lustre/work, type: lustre, network: ib-100g, servers: [10.100.250.30, 10.100.250.31], source: work}
'''

RETURN = r'''
mounts:
  description: What each present mount became on the node.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Mount point.
      type: str
      sample: /scratch
    type:
      description: File system, as given.
      type: str
      sample: glusterfs
    what:
      description: The mount source.
      type: str
      sample: "10.3.0.10:/scratch"
    options:
      description: The mount options.
      type: list
      elements: str
      sample: [_netdev, transport=rdma, "backup-volfile-servers=10.3.0.11:10.3.0.12"]
    transport:
      description: V(tcp) or V(rdma).
      type: str
      sample: rdma
    network:
      description: The site network, V(null) for the primary network.
      type: str
      sample: ib-100g
    interface:
      description: The node's interface on that network, when its configuration names one.
      type: str
      sample: ibp65s0
    unit:
      description: Name of the mount unit (also with O(method=fstab), where systemd generates it).
      type: str
      sample: scratch.mount
    automount_unit:
      description: Name of the automount unit, V(null) without automount.
      type: str
removed:
  description: Mount paths unmounted and removed (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/old-scratch]
files_written:
  description: Files written, relative to O(root) (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [etc/systemd/system/scratch.mount]
files_removed:
  description: Files removed, relative to O(root) (would be, in check mode).
  returned: always
  type: list
  elements: str
packages:
  description: The client packages.
  returned: always
  type: dict
  contains:
    family:
      description: OS family, V(null) when no mount needs packages.
      type: str
      sample: debian
    manager:
      description: V(apt), V(dnf) or V(rpm-ostree).
      type: str
      sample: apt
    needed:
      description: Packages the mounts need.
      type: list
      elements: str
      sample: [glusterfs-client, nfs-common]
    installed:
      description: Packages installed by this run (would be, in check mode).
      type: list
      elements: str
commands:
  description:
    - Commands run on the node (would be, in check mode), in order. Under a root
      other than V(/) nothing is run; these are the commands the node would need.
  returned: always
  type: list
  elements: str
  sample: ["systemctl daemon-reload", "systemctl restart scratch.mount"]
'''

import glob
import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.hpcops.coe.plugins.module_utils.argspec import refuse_unclear_input
from ansible_collections.hpcops.coe.plugins.module_utils import mounts as mu

ARGUMENT_SPEC = dict(
    root=dict(type='path', default='/'),
    # The networks role's networks_list as it is: only name, kind and rdma are read.
    networks=dict(type='list', elements='dict', default=[]),
    rdma_networks=dict(type='list', elements='str', default=[]),
    mounts=dict(type='list', elements='dict', default=[], options=dict(
        path=dict(type='str', required=True),
        type=dict(type='str', required=True, choices=list(mu.FS_TYPES)),
        servers=dict(type='list', elements='str', required=True),
        source=dict(type='str'),
        network=dict(type='str', default=''),
        transport=dict(type='str', choices=list(mu.TRANSPORTS), default='auto'),
        nfs_version=dict(type='str', choices=list(mu.NFS_VERSIONS), default='4.2'),
        options=dict(type='list', elements='str', default=[]),
        automount=dict(type='bool', default=False),
        automount_idle=dict(type='int', default=600),
        ceph_user=dict(type='str', default='admin'),
        ceph_secret=dict(type='str', no_log=True),
        ceph_fs=dict(type='str'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )),
    state=dict(type='str', choices=['present', 'exact'], default='present'),
    method=dict(type='str', choices=list(mu.METHODS), default='systemd'),
    os_family=dict(type='str', choices=list(mu.OS_FAMILIES), default='auto'),
    install_packages=dict(type='bool', default=True),
    check_networks=dict(type='bool', default=True),
    network_dirs=dict(type='list', elements='str',
                      default=['etc/systemd/network', 'etc/NetworkManager/system-connections']),
    network_file_prefix=dict(type='str', default='50-hpcops-'),
)

UNIT_DIR = 'etc/systemd/system'
WANTS_DIR = 'etc/systemd/system/remote-fs.target.wants'
FSTAB = 'etc/fstab'
SECRET_SHOWN = '<secret>'


def read_text(path):
    try:
        with open(path, 'rb') as f:
            return to_text(f.read(), errors='surrogate_or_replace')
    except (IOError, OSError):
        return None


class NodeMounts(object):
    """Plans every file and command for the mounts of one node, then carries the plan out."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.root = self.params['root']
        self.live = os.path.realpath(self.root) == '/'
        self.result = dict(changed=False, mounts=[], removed=[], files_written=[], files_removed=[],
                           packages=dict(family=None, manager=None, needed=[], installed=[]), commands=[])
        self.diffs = []
        self.writes = []        # (relative path, content, mode, secret)
        self.links = []         # (relative path, target)
        self.deletes = []       # relative paths
        self.stops = []         # units to stop before their files go
        self.starts = []        # units to (re)start after the files are in place

    def at(self, relative):
        return os.path.join(self.root, relative)

    def fail(self, msg, **extra):
        result = dict(self.result)
        result.update(extra)
        self.module.fail_json(msg=msg, **result)

    # ------------------------------------------------------------------ reading the node

    def node_links(self):
        base = self.at('sys/class/net')
        out = {}
        if not os.path.isdir(base):
            return out
        for name in sorted(os.listdir(base)):
            address = read_text(os.path.join(base, name, 'address'))
            if address:
                out[address.strip().lower()] = name
        return out

    def node_networks(self):
        files = []
        prefix = self.params['network_file_prefix']
        for directory in self.params['network_dirs']:
            base = self.at(directory.lstrip('/'))
            if not os.path.isdir(base):
                continue
            for name in sorted(os.listdir(base)):
                if name.startswith(prefix) and os.path.isfile(os.path.join(base, name)):
                    files.append((os.path.join(directory, name), read_text(os.path.join(base, name)) or ''))
        return mu.node_networks(files, self.node_links())

    def family(self):
        if self.params['os_family'] != 'auto':
            return self.params['os_family']
        for candidate in ('etc/os-release', 'usr/lib/os-release'):
            text = read_text(self.at(candidate))
            if text is not None:
                found = mu.os_family(text)
                if found:
                    return found
                self.fail('The OS family of %s is not one this module knows (%s says %s); set os_family '
                          '(valid: debian, fedora-coreos, rhel).' % (self.root, candidate,
                                                                     text.split('\n')[0][:80]))
        self.fail('Cannot tell the OS family of the node: no etc/os-release under %s. Set os_family '
                  '(valid: debian, fedora-coreos, rhel) or install_packages: false.' % self.root)

    def owned(self):
        """{mount path: [relative files]} of everything this module wrote earlier."""
        found = {}
        # Units are looked for whatever the method, so that a switch to fstab removes them.
        unit_dir = self.at(UNIT_DIR)
        if os.path.isdir(unit_dir):
            for name in sorted(os.listdir(unit_dir)):
                if name.endswith(('.mount', '.automount')):
                    path = mu.marked_path(read_text(os.path.join(unit_dir, name)))
                    if path:
                        found.setdefault(path, []).append(os.path.join(UNIT_DIR, name))
        wants = self.at(WANTS_DIR)
        if os.path.isdir(wants):
            units = dict((os.path.basename(f), p) for p, fs in found.items() for f in fs)
            for name in sorted(os.listdir(wants)):
                if name in units and os.path.islink(os.path.join(wants, name)):
                    found[units[name]].append(os.path.join(WANTS_DIR, name))
        secrets = self.at(mu.SECRET_DIR)
        if os.path.isdir(secrets):
            for name in sorted(os.listdir(secrets)):
                if name.startswith(mu.SECRET_PREFIX) and name.endswith('.secret'):
                    for path in list(found) + [m['path'] for m in self.params['mounts']]:
                        if os.path.join(mu.SECRET_DIR, name) == mu.secret_file(path):
                            found.setdefault(path, []).append(os.path.join(mu.SECRET_DIR, name))
                            break
        return found

    # ------------------------------------------------------------------ planning

    def check(self):
        problems = mu.check_input(self.params)
        if problems:
            self.fail('Invalid parameters, nothing was changed: %s.' % '; '.join(problems))
        if not os.path.isdir(self.root):
            self.fail('root %s is not a directory: give / on the node itself, or the root of a tree laid out '
                      'like one; nothing was changed.' % self.root)

    def plan(self):
        present = [m for m in self.params['mounts'] if m['state'] == 'present']
        networks = dict((n['name'], dict(n, rdma=n['name'] in self.params['rdma_networks']))
                        for n in self.params['networks'])
        node_nets = self.node_networks() if any(m['network'] for m in present) else {}
        problems = []
        plans = []
        for i, m in enumerate(self.params['mounts']):
            if m['state'] != 'present':
                continue
            net = networks.get(m['network'])
            node_net = node_nets.get(m['network'])
            if m['network'] and node_net is None and self.params['check_networks'] and self.module.check_mode:
                # A check run of a whole site meets nodes whose networks the same run would configure.
                self.module.warn('%s: network %s is not configured on this node yet; a real run fails here unless '
                                 'the networks role configures it first' % (m['path'], m['network']))
            elif m['network'] and node_net is None and self.params['check_networks']:
                problems.append('mounts[%d] (%s): network %s is not configured on this node (no %s* file for it in '
                                '%s under %s); networks configured here: %s. Run the networks role first, or set '
                                'check_networks: false if another tool configures it'
                                % (i, m['path'], m['network'], self.params['network_file_prefix'],
                                   ', '.join(self.params['network_dirs']), self.root,
                                   ', '.join(sorted(node_nets)) or 'none'))
                continue
            off = mu.off_network_servers(m['servers'], (node_net or {}).get('addresses', []))
            if off:
                self.module.warn('%s: servers %s are outside the subnets of this node on %s (%s); they are reached '
                                 'through a router' % (m['path'], ', '.join(off), m['network'],
                                                       ', '.join(node_net['addresses'])))
            plans.append(mu.plan_mount(m, net, node_net))
        if problems:
            self.fail('Nothing was changed: %s.' % '; '.join(problems))
        return plans

    def plan_packages(self, plans):
        if not plans or not self.params['install_packages']:
            return
        family = self.family()
        needed, errors = mu.packages_for(family, plans)
        if errors:
            self.fail('No client for these mounts on a %s node, nothing was changed: %s.'
                      % (family, '; '.join(errors)))
        self.result['packages'].update(family=family, manager=mu.MANAGERS[family], needed=needed)

    def check_gluster_rdma(self, plans):
        """A GlusterFS client without the RDMA transport cannot mount transport=rdma."""
        rdma = [p['path'] for p in plans if p['type'] == 'glusterfs' and p['transport'] == 'rdma']
        if not rdma:
            return
        dirs = [d for pattern in ('usr/lib*/glusterfs/*/rpc-transport', 'usr/lib*/*/glusterfs/*/rpc-transport')
                for d in glob.glob(self.at(pattern))]
        if dirs and not any(os.path.exists(os.path.join(d, 'rdma.so')) for d in dirs):
            self.fail('The GlusterFS client under %s has no RDMA transport (%s holds %s), so %s cannot be mounted '
                      'with transport rdma; nothing was written. Install a client built with it (glusterfs-rdma), '
                      'or set transport: tcp.' % (self.root, dirs[0], ', '.join(sorted(os.listdir(dirs[0]))),
                                                  ', '.join(rdma)))

    def want_file(self, relative, content, mode=0o644, secret=False):
        path = self.at(relative)
        current = None
        current_mode = None
        if os.path.lexists(path):
            if not os.path.isfile(path) or os.path.islink(path):
                self.fail('%s exists and is not a regular file; nothing was changed.' % path)
            current = read_text(path)
            current_mode = stat.S_IMODE(os.lstat(path).st_mode)
        if current == content and current_mode == mode:
            return False
        self.writes.append((relative, content, mode))
        self.result['files_written'].append(relative)
        if current != content:
            self.diffs.append({'before_header': path, 'after_header': path,
                               'before': (SECRET_SHOWN + '\n' if secret else current) if current is not None else '',
                               'after': SECRET_SHOWN + '\n' if secret else content})
        else:
            self.diffs.append({'before_header': path, 'after_header': path,
                               'before': {'mode': '%04o' % current_mode}, 'after': {'mode': '%04o' % mode}})
        return True

    def want_link(self, relative, target):
        path = self.at(relative)
        if os.path.islink(path) and os.readlink(path) == target:
            return False
        if os.path.lexists(path) and not os.path.islink(path):
            self.fail('%s exists and is not a symbolic link; nothing was changed.' % path)
        self.links.append((relative, target))
        self.result['files_written'].append(relative)
        self.diffs.append({'before_header': path, 'after_header': path,
                           'before': '', 'after': 'symlink to %s\n' % target})
        return True

    def want_gone(self, relative):
        path = self.at(relative)
        if not os.path.lexists(path):
            return
        self.deletes.append(relative)
        self.result['files_removed'].append(relative)
        secret = relative.startswith(mu.SECRET_DIR + '/')
        before = '' if os.path.islink(path) else (SECRET_SHOWN + '\n' if secret else read_text(path) or '')
        self.diffs.append({'before_header': path, 'after_header': path, 'before': before, 'after': ''})

    def plan_files(self, plans):
        params = self.params
        owned = self.owned()
        keep = set(p['path'] for p in plans)
        by_path = dict((m['path'], m) for m in params['mounts'])
        gone = sorted(p for p in owned if p not in keep and (
            params['state'] == 'exact' or (p in by_path and by_path[p]['state'] == 'absent')))
        if params['method'] == 'fstab':
            others, entries = mu.split_fstab(read_text(self.at(FSTAB)) or '')
            gone = sorted(set(gone) | set(p for p in entries if p not in keep and (
                params['state'] == 'exact' or (p in by_path and by_path[p]['state'] == 'absent'))))
        else:
            entries = None
        # Units of mounts that go are stopped first (automount before mount).
        for path in gone:
            mount_unit, automount_unit = mu.unit_names(path)
            self.stops.extend([automount_unit, mount_unit] if any(
                f.endswith('.automount') for f in owned.get(path, [])) else [mount_unit])
            for relative in owned.get(path, []):
                self.want_gone(relative)
        self.result['removed'] = gone

        changed_units = set()
        for plan in plans:
            mount = by_path[plan['path']]
            unit_changed = False
            if mount['type'] == 'cephfs':
                unit_changed |= self.want_file(mu.secret_file(plan['path']), mount['ceph_secret'] + '\n', 0o600,
                                               secret=True)
            if params['method'] == 'systemd':
                unit_changed |= self.want_file(os.path.join(UNIT_DIR, plan['unit']), mu.render_mount_unit(plan))
                enabled = plan['automount_unit'] or plan['unit']
                if plan['automount_unit']:
                    unit_changed |= self.want_file(os.path.join(UNIT_DIR, plan['automount_unit']),
                                                   mu.render_automount_unit(plan))
                    self.want_gone(os.path.join(WANTS_DIR, plan['unit']))
                else:
                    for relative in owned.get(plan['path'], []):
                        if relative.endswith('.automount'):
                            self.want_gone(relative)
                            self.want_gone(os.path.join(WANTS_DIR, os.path.basename(relative)))
                unit_changed |= self.want_link(os.path.join(WANTS_DIR, enabled), '/%s/%s' % (UNIT_DIR, enabled))
            else:
                for relative in owned.get(plan['path'], []):
                    if not relative.startswith(mu.SECRET_DIR + '/'):
                        self.want_gone(relative)
                entry = mu.render_fstab_entry(plan)
                unit_changed |= entries.get(plan['path']) != entry
                entries[plan['path']] = entry
            if unit_changed:
                changed_units.add(plan['path'])
        if entries is not None:
            for path in gone:
                entries.pop(path, None)
            fstab = read_text(self.at(FSTAB))
            wanted = mu.render_fstab(others, entries)
            if wanted != (fstab or '') and (fstab is not None or entries):
                self.want_file(FSTAB, wanted)
        lnet = mu.render_lnet(plans)
        if lnet:
            self.want_file(mu.LNET_CONF, lnet)
        elif mu.marked_path(read_text(self.at(mu.LNET_CONF))) and (params['state'] == 'exact' or gone):
            self.want_gone(mu.LNET_CONF)
        return changed_units

    # ------------------------------------------------------------------ carrying it out

    def run(self, argv):
        self.result['commands'].append(' '.join(argv))
        if not self.live or self.module.check_mode:
            return None
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            self.fail('%s failed (rc %d): %s' % (' '.join(argv), rc, (err or out).strip()[-2000:]))
        return out

    def mounted(self):
        text = read_text('/proc/self/mountinfo') if self.live else None
        points = set()
        for line in (text or '').splitlines():
            fields = line.split(' ')
            if len(fields) > 4:
                points.add(fields[4].encode('latin-1').decode('unicode_escape'))
        return points

    def missing_packages(self, family, packages):
        if not self.live:
            return packages
        rc, out, _err = self.module.run_command(mu.installed_command(family, packages))
        installed = set()
        for line in (out or '').splitlines():
            parts = line.split()
            if parts and (line.endswith('installed') and 'not-installed' not in line):
                installed.add(parts[0])
        return [p for p in packages if p not in installed]

    def write(self, relative, content, mode):
        path = self.at(relative)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
        try:
            # The secret file is private from its first byte.
            os.fchmod(fd, mode)
            with os.fdopen(fd, 'wb') as f:
                f.write(to_bytes(content, errors='surrogate_or_strict'))
            self.module.atomic_move(tmp, path)
            os.chmod(path, mode)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def apply(self, plans, changed_units):
        pkg = self.result['packages']
        if pkg['needed']:
            missing = self.missing_packages(pkg['family'], pkg['needed'])
            if missing and self.live:
                pkg['installed'] = missing
                self.run(mu.install_command(pkg['family'], missing))
            # Only now is the client there to look at; still before any unit is written.
            self.check_gluster_rdma(plans)
        mounted = self.mounted()
        for unit in self.stops:
            self.run(['systemctl', 'stop', unit])
        files = bool(self.writes or self.links or self.deletes)
        if not self.module.check_mode:
            try:
                for relative in self.deletes:
                    os.unlink(self.at(relative))
                for relative, content, mode in self.writes:
                    self.write(relative, content, mode)
                for relative, target in self.links:
                    path = self.at(relative)
                    if not os.path.isdir(os.path.dirname(path)):
                        os.makedirs(os.path.dirname(path), 0o755)
                    if os.path.lexists(path):
                        os.unlink(path)
                    os.symlink(target, path)
            except (IOError, OSError) as exc:
                self.fail('Could not write the mounts under %s: %s' % (self.root, exc))
        if files:
            self.run(['systemctl', 'daemon-reload'])
        for plan in plans:
            unit = plan['automount_unit'] or plan['unit']
            if plan['path'] in changed_units or (self.live and plan['path'] not in mounted):
                self.run(['systemctl', 'restart', unit])
        ran = self.live and bool(self.result['commands'])
        self.result['changed'] = bool(files or self.result['removed'] or pkg['installed'] or ran)

    def main(self):
        self.check()
        plans = self.plan()
        self.plan_packages(plans)
        self.check_gluster_rdma(plans)
        changed_units = self.plan_files(plans)
        for plan in plans:
            self.result['mounts'].append(dict((k, plan[k]) for k in (
                'path', 'type', 'what', 'options', 'transport', 'network', 'interface', 'unit', 'automount_unit')))
        if self.result['packages']['needed'] and not self.live:
            self.result['commands'].append(
                ' '.join(mu.install_command(self.result['packages']['family'], self.result['packages']['needed'])))
        self.apply(plans, changed_units)
        if self.module._diff:  # pylint: disable=protected-access
            self.result['diff'] = self.diffs
        self.module.exit_json(**self.result)


def main():
    refuse_unclear_input(ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    NodeMounts(module).main()


if __name__ == '__main__':
    main()
