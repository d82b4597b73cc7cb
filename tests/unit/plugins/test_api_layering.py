# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every OpenStack call of the modules, discovery and the inventory goes through the one layer.

Read from the source: only ``module_utils/magnum_api.py`` imports python-magnumclient,
nothing imports python-heatclient, requests or urllib3 (HTTP goes through the SDK
session, ``module_utils/rest.py``), and no plugin reaches into the private
internals of the client libraries.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import re

import pytest

PLUGINS = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'plugins'))

# Top-level package -> the files (relative to plugins/) allowed to import it.
ALLOWED_IMPORTS = {
    'magnumclient': {'module_utils/magnum_api.py'},
    'heatclient': set(),
    'requests': set(),
    'urllib3': set(),
}

# Private internals of python-magnumclient, requests and ansible-core the collection once used.
PRIVATE_USES = re.compile(
    r'''(?:\.|getattr\(\w+, ['"])(_list_pagination|_path|_create|_update|_delete|_http_request|_info|'''
    r'_pool_connections|_pool_block|_pool_maxsize|_load_params|_no_log_values)\b')
# Uses left where a replacement is not yet in place; a new file must not join them.
KNOWN_PRIVATE_USES = {
    # ansible-core has no public way to read a module's raw arguments before AnsibleModule
    # validates them, which is what refuse_unclear_input needs; two of the bases the modules
    # stand on (openstack.cloud's and kubernetes.core's) build their AnsibleModule themselves,
    # so a subclass of AnsibleModule could not take its place.
    'module_utils/argspec.py': {'_load_params'},
}


def plugin_files():
    for root, _dirs, files in os.walk(PLUGINS):
        for name in sorted(files):
            if name.endswith('.py'):
                path = os.path.join(root, name)
                yield os.path.relpath(path, PLUGINS).replace(os.sep, '/'), path


def imported_packages(path):
    with open(path) as stream:
        tree = ast.parse(stream.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split('.')[0]


def test_the_files_are_found():
    found = dict(plugin_files())
    assert 'module_utils/magnum_api.py' in found and 'inventory/clusters.py' in found
    assert len([f for f in found if f.startswith('modules/')]) > 10


@pytest.mark.parametrize('rel, path', list(plugin_files()))
def test_client_libraries_are_imported_only_by_the_layer(rel, path):
    wrong = sorted(set(p for p in imported_packages(path) if p in ALLOWED_IMPORTS and rel not in ALLOWED_IMPORTS[p]))
    assert wrong == [], '%s imports %s; reach OpenStack through module_utils/magnum_api.py or rest.py' % (
        rel, ', '.join(wrong))


@pytest.mark.parametrize('rel, path', list(plugin_files()))
def test_no_private_internals_of_other_libraries(rel, path):
    with open(path) as stream:
        code = stream.read()
    used = set(m.group(1) for m in PRIVATE_USES.finditer(code))
    # The collection's own objects may have private helpers of the same names.
    own = set(re.findall(r'def (_\w+)\(', code)) | set(re.findall(r'self\.(_\w+)\s*=', code))
    unexpected = sorted(used - own - KNOWN_PRIVATE_USES.get(rel, set()))
    assert unexpected == [], '%s uses private internals: %s' % (rel, ', '.join(unexpected))
