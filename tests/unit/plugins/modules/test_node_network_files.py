# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.node_network_files and node_network_info as Ansible runs them, on a temporary tree."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest


from ansible_collections.hpcops.coe.plugins.modules import node_network_files, node_network_info
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import run_module


def run(module, check=False, diff=False, **args):
    return run_module(module.main, args, check=check, diff=diff)


def files(directory, check=False, diff=False, **args):
    return run(node_network_files, check=check, diff=diff, directory=str(directory), **args)


def tree(directory):
    """{name: (content, mode)} of the regular files in directory."""
    out = {}
    for name in sorted(os.listdir(str(directory))):
        path = os.path.join(str(directory), name)
        with open(path) as f:
            out[name] = (f.read(), stat.S_IMODE(os.stat(path).st_mode))
    return out


LINK = {'name': '50-hpcops-eth-25g.link', 'content': '[Match]\nMACAddress=fa:16:3e:00:00:02\n'}
NETWORK = {'name': '50-hpcops-eth-25g.network', 'content': '[Match]\nName=ens2\n[Network]\nDHCP=ipv4\n'}


def test_creates_the_directory_and_files_then_changes_nothing(tmp_path):
    target = tmp_path / 'etc' / 'systemd' / 'network'
    first = files(target, files=[LINK, NETWORK])
    assert not first.failed and first.result['changed'] and first.result['directory_created']
    assert tree(target) == {LINK['name']: (LINK['content'], 0o644), NETWORK['name']: (NETWORK['content'], 0o644)}
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o755
    again = files(target, files=[LINK, NETWORK])
    assert not again.result['changed']
    assert again.result['written'] == [] and len(again.result['unchanged']) == 2


def test_check_mode_predicts_and_writes_nothing(tmp_path):
    target = tmp_path / 'net'
    target.mkdir()
    (target / '50-hpcops-old.network').write_text('old\n')
    (target / 'other.network').write_text('not ours\n')
    predicted = files(target, check=True, files=[NETWORK], prune=['50-hpcops-*.network'])
    assert predicted.result['changed']
    assert predicted.result['written'] == [str(target / NETWORK['name'])]
    assert predicted.result['removed'] == [str(target / '50-hpcops-old.network')]
    assert sorted(os.listdir(str(target))) == ['50-hpcops-old.network', 'other.network']
    done = files(target, files=[NETWORK], prune=['50-hpcops-*.network'])
    assert (done.result['written'], done.result['removed']) == (predicted.result['written'],
                                                                predicted.result['removed'])
    assert sorted(os.listdir(str(target))) == [NETWORK['name'], 'other.network']


def test_prune_spares_kept_files_and_files_of_other_patterns(tmp_path):
    target = tmp_path / 'net'
    target.mkdir()
    for name in ('50-hpcops-ib.network', '50-hpcops-pending.network', '50-hpcops-eth.link', '10-site.network'):
        (target / name).write_text(name)
    result = files(target, files=[NETWORK], keep=['50-hpcops-pending.network'], prune=['50-hpcops-*.network'])
    assert result.result['removed'] == [str(target / '50-hpcops-ib.network')]
    assert sorted(os.listdir(str(target))) == ['10-site.network', '50-hpcops-eth-25g.network', '50-hpcops-eth.link',
                                               '50-hpcops-pending.network']


def test_changed_content_and_mode_are_set_and_shown_in_the_diff(tmp_path):
    target = tmp_path / 'nm'
    target.mkdir(mode=0o755)
    path = target / '50-hpcops-eth.nmconnection'
    path.write_text('[connection]\nid=old\n')
    os.chmod(str(path), 0o644)
    wanted = {'name': path.name, 'content': '[connection]\nid=hpcops-eth\n'}
    result = files(target, diff=True, files=[wanted], mode='0600', directory_mode='0700')
    assert result.result['changed'] and result.result['written'] == [str(path)]
    assert tree(target) == {path.name: (wanted['content'], 0o600)}
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o700
    content_diffs = [d for d in result.result['diff'] if isinstance(d.get('after'), str)]
    assert content_diffs == [{'before_header': str(path), 'after_header': str(path),
                              'before': '[connection]\nid=old\n', 'after': wanted['content']}]
    os.chmod(str(path), 0o644)
    mode_only = files(target, diff=True, files=[wanted], mode='0600', directory_mode='0700')
    assert mode_only.result['changed'] and mode_only.result['diff'] == [
        {'before_header': str(path), 'after_header': str(path), 'before': {'mode': '0644'}, 'after': {'mode': '0600'}}]
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    # a rewrite leaves no temporary file behind
    assert os.listdir(str(target)) == [path.name]


@pytest.mark.parametrize('args, named', [
    ({'files': [{'name': '../escape.network', 'content': 'x'}]}, "'../escape.network' is not a file name"),
    ({'files': [LINK, LINK]}, 'got 50-hpcops-eth-25g.link more than once'),
    ({'files': [LINK], 'keep': [LINK['name']]}, 'in both files and keep'),
    ({'mode': 'rw-r--r--'}, "mode 'rw-r--r--' is not an octal mode"),
    ({'directory_mode': '99'}, "directory_mode '99' is not an octal mode"),
    ({'prune': ['sub/*.network']}, "prune: 'sub/*.network' is not a file-name pattern"),
])
def test_bad_input_is_named_and_nothing_is_written(tmp_path, args, named):
    target = tmp_path / 'net'
    result = files(target, **args)
    assert result.failed and named in result.result['msg']
    assert not target.exists()


def test_a_directory_where_a_file_goes_is_refused(tmp_path):
    (tmp_path / LINK['name']).mkdir()
    result = files(tmp_path, files=[LINK, NETWORK])
    assert result.failed and 'is not a regular file' in result.result['msg']
    assert not (tmp_path / NETWORK['name']).exists()


def sysfs(root, links):
    base = root / 'sys' / 'class' / 'net'
    base.mkdir(parents=True)
    for name, values in links.items():
        (base / name).mkdir()
        for key, value in values.items():
            (base / name / key).write_text(value + '\n')
    (base / 'bonding_masters').write_text('\n')


def test_info_reads_every_link_and_skips_entries_that_are_not_links(tmp_path):
    ib = '80:00:02:08:FE:80:00:00:00:00:00:00:3C:FD:FE:03:00:A1:00:02'
    sysfs(tmp_path, {'lo': {'address': '00:00:00:00:00:00', 'type': '772', 'mtu': '65536', 'operstate': 'unknown'},
                     'ibp65s0': {'address': ib, 'type': '32', 'mtu': '4092', 'operstate': 'down'},
                     'ens2': {'address': 'FA:16:3E:00:00:02'}})
    (tmp_path / 'run' / 'systemd' / 'netif').mkdir(parents=True)
    result = run(node_network_info, root=str(tmp_path))
    assert not result.failed and not result.result['changed']
    assert result.result['backend'] == 'systemd-networkd'
    assert result.result['links'] == [
        {'name': 'ens2', 'address': 'fa:16:3e:00:00:02', 'type': None, 'mtu': None, 'operstate': None},
        {'name': 'ibp65s0', 'address': ib.lower(), 'type': 32, 'mtu': 4092, 'operstate': 'down'},
        {'name': 'lo', 'address': '00:00:00:00:00:00', 'type': 772, 'mtu': 65536, 'operstate': 'unknown'}]


def test_info_prefers_networkmanager_and_reports_no_backend(tmp_path):
    sysfs(tmp_path, {})
    assert run(node_network_info, root=str(tmp_path)).result['backend'] is None
    (tmp_path / 'run' / 'systemd' / 'netif').mkdir(parents=True)
    (tmp_path / 'run' / 'NetworkManager').mkdir(parents=True)
    assert run(node_network_info, root=str(tmp_path)).result['backend'] == 'NetworkManager'


def test_info_names_a_root_without_sysfs(tmp_path):
    result = run(node_network_info, root=str(tmp_path / 'image'))
    assert result.failed and 'has no sys/class/net' in result.result['msg'] and str(tmp_path) in result.result['msg']
