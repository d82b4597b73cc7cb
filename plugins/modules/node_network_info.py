#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_network_info
short_description: The network links of a node and the network service that manages them
version_added: "0.1.0"
author: hpcops.coe maintainers (@hpcops)
description:
  - Runs on the node. Reads every link under C(sys/class/net) with its hardware
    address, link type, MTU and operational state, and finds which network
    service runs (NetworkManager or systemd-networkd), all in one module run.
  - The hardware address of an InfiniBand link is its 20-byte IPoIB address,
    whose last 8 bytes are the port GUID; the networks role matches the ports
    Nova attached against it.
  - Read only; never reports a change.
options:
  root:
    description:
      - The file system root to read below, V(/) on a running node. Another
        directory reads a node image or a test tree laid out the same way.
    type: path
    default: /
notes:
  - Entries of C(sys/class/net) that are not links (such as C(bonding_masters))
    are skipped.
seealso:
  - module: hpcops.coe.node_network_files
  - module: hpcops.coe.server_interfaces
extends_documentation_fragment:
  - hpcops.coe.attributes
  - hpcops.coe.attributes.info_module
attributes:
  platform:
    platforms: linux
'''

EXAMPLES = r'''
- name: Read the node's links and network service
  hpcops.coe.node_network_info:
  register: node_net

- name: Show the InfiniBand links (ARPHRD_INFINIBAND is 32)
  ansible.builtin.debug:
    msg: "{{ node_net.links | selectattr('type', 'equalto', 32) | map(attribute='name') | list }}"

- name: Read the installed system from a rescue boot, mounted under /mnt/sysimage
  hpcops.coe.node_network_info:
    root: /mnt/sysimage
'''

RETURN = r'''
links:
  description: The links of the node, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Kernel name of the link.
      type: str
      sample: ens2f0
    address:
      description: Hardware address in lower case, V(null) when the link has none.
      type: str
      sample: "3c:fd:fe:a1:00:02"
    type:
      description: ARP hardware type (V(1) Ethernet, V(32) InfiniBand, V(772) loopback), V(null) when unknown.
      type: int
      sample: 1
    mtu:
      description: Current MTU, V(null) when unknown.
      type: int
      sample: 9000
    operstate:
      description: Operational state such as V(up) or V(down), V(null) when unknown.
      type: str
      sample: up
backend:
  description:
    - The network service found running, V(NetworkManager) or V(systemd-networkd),
      or V(null) when neither is. NetworkManager wins when both run, because it
      then owns the links it manages.
  returned: always
  type: str
  sample: systemd-networkd
'''

import os

from ansible.module_utils.basic import AnsibleModule

# Runtime directories each service creates when it starts.
BACKEND_MARKERS = (('NetworkManager', 'run/NetworkManager'), ('systemd-networkd', 'run/systemd/netif'))


def read_value(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (IOError, OSError):
        return None


def as_int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def read_links(root):
    base = os.path.join(root, 'sys', 'class', 'net')
    links = []
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        if not os.path.isdir(path):
            continue
        address = read_value(os.path.join(path, 'address'))
        links.append({'name': name,
                      'address': address.lower() if address else None,
                      'type': as_int(read_value(os.path.join(path, 'type'))),
                      'mtu': as_int(read_value(os.path.join(path, 'mtu'))),
                      'operstate': read_value(os.path.join(path, 'operstate'))})
    return links


def find_backend(root):
    for backend, marker in BACKEND_MARKERS:
        if os.path.exists(os.path.join(root, marker)):
            return backend
    return None


def main():
    module = AnsibleModule(argument_spec=dict(root=dict(type='path', default='/')), supports_check_mode=True)
    root = module.params['root']
    if not os.path.isdir(os.path.join(root, 'sys', 'class', 'net')):
        module.fail_json(msg='root %s has no sys/class/net directory: give the root of a Linux node (/ on the node '
                             'itself) or of a tree laid out like one.' % root)
    try:
        links = read_links(root)
    except OSError as exc:
        module.fail_json(msg='Could not read the links under %s: %s' % (os.path.join(root, 'sys/class/net'), exc))
    module.exit_json(changed=False, links=links, backend=find_backend(root))


if __name__ == '__main__':
    main()
