# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Defects an adversarial operator found, each pinned by a test that failed before its fix.

* failed clusters and nodegroups read as failed, not as success, and the cluster role
  names the nodes in ERROR instead of dying on an empty address list;
* interrupted or concurrent server_interfaces runs never leave a network attached twice;
* a transient 5xx on an attach is checked (did it land?) and retried;
* inventory configuration typos are errors, and its cache files are private;
* a nodegroup with fewer servers than Magnum counts is reported;
* a scale-down through the role can name the nodes to remove.
"""

import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

from reliability_kit import REPO, CloudApi, play, run_playbook, task


# --------------------------------------------------------------------------- inventory

def _inventory(tmp_path, sim, **options):
    with open(sim.clouds_yaml) as f:
        entry = yaml.safe_load(f)['clouds'][sim.cloud_name]
    clouds_yaml = tmp_path / 'clouds.yaml'
    clouds_yaml.write_text(yaml.safe_dump({'clouds': {'sim': entry}}))
    config = {'plugin': 'hpcops.coe.clusters', 'clouds': ['sim'], 'clouds_yaml_path': [str(clouds_yaml)]}
    config.update(options)
    path = tmp_path / 'test.coe_clusters.yml'
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    env.update({'ANSIBLE_COLLECTIONS_PATH': os.environ.get('ANSIBLE_COLLECTIONS_PATH')
                or os.path.join(REPO, '.cache', 'collections'),
                'ANSIBLE_HOME': str(tmp_path / 'ansible-home'), 'ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED': 'true',
                'ANSIBLE_NOCOLOR': '1', 'PYTHONWARNINGS': 'ignore'})
    env.pop('OS_CLOUD', None)
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-inventory'), '-i', str(path), '--list']
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize('typo, meant', [('cluster', 'clusters'), ('ssh_usr', 'ssh_user'),
                                         ('fail_on_error', 'fail_on_errors')])
def test_inventory_refuses_unknown_config_keys(cloud, tmp_path, typo, meant):
    cloud.reset_requests()
    proc = _inventory(tmp_path, cloud, **{typo: ['hpc-heat'] if typo == 'cluster' else 'x'})
    assert proc.returncode != 0, 'a typo must not widen the inventory to every cluster:\n' + proc.stdout[:2000]
    text = ' '.join((proc.stderr + proc.stdout).split())
    assert "'%s'" % typo in text and meant in text and 'host_network' in text, text[-2000:]
    # Refused before any cloud was asked.
    assert not cloud.requests()['by_route'], cloud.requests()['by_route']


def test_inventory_cache_files_are_private(cloud, tmp_path):
    cache_dir = tmp_path / 'inventory-cache'
    proc = _inventory(tmp_path, cloud, cache=True, cache_plugin='ansible.builtin.jsonfile',
                      cache_connection=str(cache_dir), cache_timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = [cache_dir / name for name in os.listdir(cache_dir)]
    assert files, 'nothing was cached'
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, (path, oct(os.stat(path).st_mode))
