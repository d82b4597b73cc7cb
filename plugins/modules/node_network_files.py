#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_network_files
short_description: The set of network configuration files a node should have, written in one step
version_added: "0.1.0"
author: hpcops.coe maintainers (@hpcops)
description:
  - Runs on the node. Makes a directory hold the given files with the given
    content and mode, and removes files matching O(prune) that are no longer
    wanted, in one module run rather than one per file.
  - Written for the systemd-networkd C(.link) and C(.network) files and the
    NetworkManager keyfiles of the networks role. On a cluster of hundreds of
    nodes with several networks each, one run per node instead of one per file
    is what keeps a rerun short.
  - Each file is replaced atomically (written beside it, then renamed), so a
    network service never reads half a file.
options:
  directory:
    description:
      - The directory the files go in. Created, with O(directory_mode), when missing.
    type: path
    required: true
  directory_mode:
    description:
      - Mode of O(directory), in octal. Also set on an existing directory.
    type: str
    default: "0755"
  mode:
    description:
      - Mode of every file written, in octal. NetworkManager ignores keyfiles
        that others can read, so give V(0600) for them.
    type: str
    default: "0644"
  files:
    description:
      - The files the directory should hold.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - File name inside O(directory), without a path.
        type: str
        required: true
      content:
        description:
          - The whole content of the file.
        type: str
        required: true
  keep:
    description:
      - Names of files to leave exactly as they are, written or not, even when
        they match O(prune); for example the file of a network whose port is
        not active yet.
    type: list
    elements: str
    default: []
  prune:
    description:
      - Shell-style patterns of file names in O(directory); a file that matches
        one and is in neither O(files) nor O(keep) is removed.
      - Give a pattern that only the files this task owns match, such as
        V(50-hpcops-*.network).
    type: list
    elements: str
    default: []
seealso:
  - module: hpcops.coe.node_network_info
  - module: ansible.builtin.template
extends_documentation_fragment:
  - hpcops.coe.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be written and removed.
  diff_mode:
    support: full
    details: Each file before and after.
  platform:
    platforms: posix
'''

EXAMPLES = r'''
- name: The .network files of the extra networks, and no stale ones
  hpcops.coe.node_network_files:
    directory: /etc/systemd/network
    files:
      - name: 50-hpcops-eth-25g.network
        content: |
          # OpenStack network eth-25g, port 6d3c1f0e-2b1a-4c55-9f0e-7b2a1c9d4e01
          [Match]
          MACAddress=fa:16:3e:00:00:02
          [Network]
          DHCP=ipv4
    prune:
      - 50-hpcops-*.network
  notify: Reload systemd-networkd

- name: NetworkManager keyfiles, readable by root only
  hpcops.coe.node_network_files:
    directory: /etc/NetworkManager/system-connections
    directory_mode: "0700"
    mode: "0600"
    files:
      - name: 50-hpcops-ib-100g.nmconnection
        content: |
          # OpenStack network ib-100g, port 0b8e4d2a-5f61-4e3b-8c7d-2a9f1e6b3c40
          [connection]
          id=hpcops-ib-100g
          type=infiniband
          interface-name=ib0
          [infiniband]
          mtu=4092
          transport-mode=datagram
          [ipv4]
          method=manual
          address1=10.100.0.21/16
    prune:
      - 50-hpcops-*.nmconnection
'''

RETURN = r'''
written:
  description: Paths of the files written or whose mode was set (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["/etc/systemd/network/50-hpcops-eth-25g.network"]
removed:
  description: Paths of the files removed (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["/etc/systemd/network/50-hpcops-eth-10g.network"]
unchanged:
  description: Paths of the files of O(files) that already had their content and mode.
  returned: always
  type: list
  elements: str
directory_created:
  description: Whether O(directory) was created (would be, in check mode).
  returned: always
  type: bool
'''

import fnmatch
import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.hpcops.coe.plugins.module_utils.argspec import refuse_unclear_input

ARGUMENT_SPEC = dict(
    directory=dict(type='path', required=True),
    directory_mode=dict(type='str', default='0755'),
    mode=dict(type='str', default='0644'),
    files=dict(type='list', elements='dict', default=[], options=dict(
        name=dict(type='str', required=True),
        content=dict(type='str', required=True),
    )),
    keep=dict(type='list', elements='str', default=[], no_log=False),
    prune=dict(type='list', elements='str', default=[]),
)


def octal(text, option):
    """The permission bits of an octal mode string, or an error naming the option."""
    try:
        value = int(text, 8)
    except (TypeError, ValueError):
        value = -1
    if not 0 <= value <= 0o7777:
        return None, '%s %r is not an octal mode such as 0644' % (option, text)
    return value, None


def bad_name(name):
    return not name or name in ('.', '..') or '/' in name or '\0' in name


def problems_of(params):
    problems = []
    names = [f['name'] for f in params['files']]
    for option, values in (('files', names), ('keep', params['keep'])):
        for name in values:
            if bad_name(name):
                problems.append('%s: %r is not a file name (no path, not . or ..)' % (option, name))
    twice = sorted(set(n for n in names if names.count(n) > 1))
    if twice:
        problems.append('files: each name once, got %s more than once' % ', '.join(twice))
    both = sorted(set(names) & set(params['keep']))
    if both:
        problems.append('%s in both files and keep; a file is either written or kept' % ', '.join(both))
    for pattern in params['prune']:
        if '/' in pattern or not pattern:
            problems.append('prune: %r is not a file-name pattern inside directory' % pattern)
    return problems


def read_file(path):
    """(content bytes, permission bits) of a regular file, or (None, None) when there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None, None
    if not stat.S_ISREG(st.st_mode):
        return False, None
    with open(path, 'rb') as f:
        return f.read(), stat.S_IMODE(st.st_mode)


def write_file(module, path, content, mode):
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(content)
        os.chmod(tmp, mode)
        module.atomic_move(tmp, path)
        os.chmod(path, mode)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    refuse_unclear_input(ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    directory = params['directory']
    dir_mode, dir_error = octal(params['directory_mode'], 'directory_mode')
    file_mode, file_error = octal(params['mode'], 'mode')
    problems = [p for p in (dir_error, file_error) if p] + problems_of(params)
    if problems:
        module.fail_json(msg='Invalid parameters, nothing was written: %s.' % '; '.join(problems))
    if os.path.lexists(directory) and not os.path.isdir(directory):
        module.fail_json(msg='directory %s exists and is not a directory; nothing was written.' % directory)

    result = dict(changed=False, written=[], removed=[], unchanged=[], directory_created=False)
    diffs = []
    plan = []
    exists = os.path.isdir(directory)
    if not exists:
        result['directory_created'] = True
        diffs.append({'before_header': directory, 'after_header': directory,
                      'before': {'path': directory, 'state': 'absent'},
                      'after': {'path': directory, 'state': 'directory', 'mode': params['directory_mode']}})
    chmod_dir = exists and stat.S_IMODE(os.stat(directory).st_mode) != dir_mode
    if chmod_dir:
        diffs.append({'before_header': directory, 'after_header': directory,
                      'before': {'mode': '%04o' % stat.S_IMODE(os.stat(directory).st_mode)},
                      'after': {'mode': '%04o' % dir_mode}})

    for entry in params['files']:
        path = os.path.join(directory, entry['name'])
        wanted = to_bytes(entry['content'], errors='surrogate_or_strict')
        current, mode = read_file(path) if exists else (None, None)
        if current is False:
            module.fail_json(msg='%s exists and is not a regular file; nothing was written.' % path)
        if current == wanted and mode == file_mode:
            result['unchanged'].append(path)
            continue
        plan.append((path, wanted, current != wanted))
        result['written'].append(path)
        if current != wanted:
            diffs.append({'before_header': path, 'after_header': path,
                          'before': to_text(current or b'', errors='surrogate_or_replace'),
                          'after': entry['content']})
        else:
            diffs.append({'before_header': path, 'after_header': path,
                          'before': {'mode': '%04o' % mode}, 'after': {'mode': '%04o' % file_mode}})

    listed = set(f['name'] for f in params['files']) | set(params['keep'])
    stale = []
    if exists and params['prune']:
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name in listed or not any(fnmatch.fnmatchcase(name, p) for p in params['prune']):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                continue
            stale.append(path)
            result['removed'].append(path)
            current, _mode = read_file(path)
            diffs.append({'before_header': path, 'after_header': path,
                          'before': to_text(current or b'', errors='surrogate_or_replace'), 'after': ''})

    result['changed'] = bool(result['directory_created'] or chmod_dir or plan or stale)
    if module._diff:  # pylint: disable=protected-access
        result['diff'] = diffs
    if module.check_mode or not result['changed']:
        module.exit_json(**result)

    try:
        if not exists:
            os.makedirs(directory, dir_mode)
            os.chmod(directory, dir_mode)
        elif chmod_dir:
            os.chmod(directory, dir_mode)
        for path, content, content_changed in plan:
            if content_changed:
                write_file(module, path, content, file_mode)
            else:
                os.chmod(path, file_mode)
        for path in stale:
            os.unlink(path)
    except (IOError, OSError) as exc:
        module.fail_json(msg='Could not write the files of %s: %s' % (directory, exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
