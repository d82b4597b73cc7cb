# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: clusters
short_description: The nodes of Magnum clusters, grouped by cluster, role and nodegroup
version_added: "0.1.0"
author: hpcops.coe maintainers (@hpcops)
description:
  - Makes an inventory of the nodes of all or some Magnum clusters of one or
    more clouds, whatever the cluster driver (Heat or Cluster API), with one
    group per cluster, per role and per nodegroup.
  - The configuration file must be named C(coe_clusters.yml), C(coe_clusters.yaml),
    or end in C(.coe_clusters.yml) or C(.coe_clusters.yaml).
  - Clouds are read from C(clouds.yaml) like openstacksdk does. Clouds, and the
    clusters within each cloud, are queried concurrently. Servers are listed with
    a few paged C(GET /servers/detail) calls per cloud filtered by name, never
    one call per node, so the number of requests does not grow with the number
    of nodes except for paging.
  - "Groups (names with characters other than letters, digits and C(_) replaced by C(_)), the same as
    the cluster role gives the nodes it adds: C(coe_nodes); C(coe_masters) and C(coe_workers);
    C(coe_cluster_<cluster>), C(coe_cluster_<cluster>_master), C(coe_cluster_<cluster>_worker);
    C(coe_cluster_<cluster>_ng_<nodegroup>) and C(coe_ng_<nodegroup>); C(coe_cloud_<cloud>);
    C(coe_driver_heat) or C(coe_driver_capi)."
  - "Host variables: C(ansible_host), C(ansible_user) (when known), and C(coe_cloud), C(coe_region),
    C(coe_cluster), C(coe_cluster_id), C(coe_cluster_status), C(coe_cluster_labels), C(coe_driver),
    C(coe_role), C(coe_nodegroup), C(coe_server_id), C(coe_server_name), C(coe_status), C(coe_flavor),
    C(coe_image), C(coe_availability_zone), C(coe_addresses) (per network: fixed and floating IPs and MAC),
    C(coe_ips) (per network: its first fixed IP) and C(coe_floating_ip)."
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    required: true
    type: str
    choices: [hpcops.coe.clusters]
  clouds:
    description:
      - Names of the clouds in C(clouds.yaml) to query. Empty means every cloud (and region) found.
    type: list
    elements: str
    default: []
  clouds_yaml_path:
    description:
      - Paths of C(clouds.yaml) files, searched before openstacksdk's default locations.
    type: list
    elements: str
    env:
      - name: OS_CLIENT_CONFIG_FILE
  clusters:
    description:
      - Names or UUIDs of the clusters to include. Empty means every cluster.
      - A name shared by several clusters selects all of them.
    type: list
    elements: str
    default: []
  skip_statuses:
    description:
      - Clusters in these statuses are left out (their nodes do not exist yet, or are going away).
    type: list
    elements: str
    default: [CREATE_IN_PROGRESS, DELETE_IN_PROGRESS, DELETE_COMPLETE]
  inventory_hostname:
    description:
      - What to name hosts by. With V(name), servers sharing a name are named by their ID instead.
    type: str
    choices: [name, id]
    default: name
  host_network:
    description:
      - Name of the network whose address becomes C(ansible_host) (its fixed IP, else its floating IP).
      - Nodes without an address on it, or when unset, get their first floating IP,
        else their first fixed IP. IPv4 is preferred over IPv6 at each step.
    type: str
  ssh_user:
    description:
      - C(ansible_user) for nodes no other rule applies to. Unset leaves C(ansible_user) undefined.
    type: str
  ssh_user_label:
    description:
      - Name of a cluster label whose value is the SSH user of the cluster's nodes. It wins over
        O(ssh_user_by_image) and O(ssh_user).
    type: str
    default: ssh_user
  ssh_user_by_image:
    description:
      - "SSH user per image, keyed by image name, image ID or the image's C(os_distro) property,
        for example C({fedora-coreos: core, ubuntu: ubuntu})."
      - Costs one image look-up per distinct image of the nodes.
    type: dict
    default: {}
  fail_on_errors:
    description:
      - Whether a cloud or a cluster that cannot be read fails the whole inventory source.
      - When V(false), it is reported as a warning and the other clouds and clusters are still listed;
        such a partial result is not written to the cache.
    type: bool
    default: false
  max_workers:
    description:
      - Threads used to query clusters concurrently (clouds each get their own).
    type: int
    default: 8
  page_size:
    description:
      - Servers per C(GET /servers/detail) page. Unset lets Nova use its maximum.
    type: int
requirements:
  - python >= 3.9
  - openstacksdk >= 1.0.0
  - python-magnumclient >= 4.0.0
extends_documentation_fragment:
  - constructed
  - inventory_cache
notes:
  - The cache key is made of the configuration file's path, the identities of the clouds (name, region,
    auth URL, project, user and domain, never secrets) and the options that change what is fetched, so a
    changed C(clouds.yaml) or another cloud never gets another cloud's cached nodes.
  - File caches (for example C(ansible.builtin.jsonfile)) get their files made readable by their owner only (mode C(0600)).
  - A key of the configuration file that is not one of the options above is an error that names the key and the
    valid ones, before any cloud is asked (a typo such as C(cluster) for C(clusters) would otherwise list every
    cluster of the cloud).
'''

EXAMPLES = r'''
# inventory/prod.coe_clusters.yml, used as: ansible-inventory -i inventory/prod.coe_clusters.yml --graph
plugin: hpcops.coe.clusters
clouds: [hpc-east, hpc-west]
clusters: [k8s-hpc, k8s-gpu]
host_network: storage-net
ssh_user_by_image:
  fedora-coreos: core
  ubuntu: ubuntu
fail_on_errors: true
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-coe
cache_timeout: 600
keyed_groups:
  - key: coe_flavor
    prefix: flavor
compose:
  ib_ip: coe_ips['ib-net'] | default(omit)
groups:
  gpu_nodes: "'gpu' in coe_nodegroup"
'''

import difflib
import hashlib
import json
import os
import stat
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.hpcops.coe.plugins.module_utils import discovery
from ansible_collections.hpcops.coe.plugins.module_utils.sessions import retry_refused_tokens
from ansible_collections.hpcops.coe.plugins.plugin_utils.node_groups import choose_ansible_host, node_groups

try:
    import openstack
    from openstack.config import loader as os_config_loader
    HAS_OPENSTACKSDK = True
    OPENSTACKSDK_IMPORT_ERROR = None
except ImportError:
    openstack = None
    os_config_loader = None
    HAS_OPENSTACKSDK = False
    OPENSTACKSDK_IMPORT_ERROR = traceback.format_exc()

CACHE_FORMAT = 1

# Parts of a cloud's auth that say which cloud, project and user the data was read as.
_IDENTITY_AUTH_KEYS = (
    'auth_url', 'project_id', 'project_name', 'project_domain_id', 'project_domain_name',
    'tenant_id', 'tenant_name', 'domain_id', 'domain_name', 'user_id', 'username',
    'user_domain_id', 'user_domain_name', 'application_credential_id', 'application_credential_name',
    'system_scope',
)


def cloud_identity(cloud_region):
    """What tells one cloud's data from another's: no secrets, only who and where."""
    config = cloud_region.config or {}
    auth = config.get('auth') or {}
    identity = {
        'cloud': cloud_region.name,
        'region': cloud_region.get_region_name(),
        'auth_type': config.get('auth_type'),
    }
    for key in _IDENTITY_AUTH_KEYS:
        if auth.get(key):
            identity[key] = auth[key]
    return identity


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'hpcops.coe.clusters'

    def verify_file(self, path):
        if not super(InventoryModule, self).verify_file(path):
            return False
        return path.endswith(('.coe_clusters.yml', '.coe_clusters.yaml', '/coe_clusters.yml',
                              '/coe_clusters.yaml')) or path in ('coe_clusters.yml', 'coe_clusters.yaml')

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        config = self._read_config_data(path)
        self._check_keys(config, path)
        if not HAS_OPENSTACKSDK:
            raise AnsibleParserError('The hpcops.coe.clusters inventory needs the openstacksdk Python library: %s'
                                     % OPENSTACKSDK_IMPORT_ERROR)

        regions, config_errors = self._cloud_regions()
        fingerprint = self._fingerprint(regions)
        cache_key = '%s_%s' % (self.get_cache_key(path),
                               hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode('utf-8')).hexdigest()[:16])

        use_cache = self.get_option('cache')
        data = None
        if use_cache and cache:
            data = self._cached(cache_key, fingerprint)
        if data is None:
            data, errors = self._fetch(regions, fingerprint)
            errors = config_errors + errors
            self._report(errors)
            if use_cache and not errors:
                self._cache[cache_key] = data
        else:
            self._report(config_errors)
        self._populate(data)

    def _check_keys(self, config, path):
        """Refuse keys the plugin does not know: a typo (``cluster:``) would otherwise widen the scope."""
        valid = set(self._options) | {'plugin'}
        unknown = sorted(k for k in (config or {}) if k not in valid)
        if not unknown:
            return
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
            hints.append("'%s'%s" % (key, " (did you mean '%s'?)" % close[0] if close else ''))
        raise AnsibleParserError(
            '%s: unknown option%s %s for the hpcops.coe.clusters inventory. Valid options: %s.'
            % (path, 's' if len(unknown) > 1 else '', ', '.join(hints), ', '.join(sorted(valid))))

    # ------------------------------------------------------------------ cache

    def update_cache_if_changed(self):
        super(InventoryModule, self).update_cache_if_changed()
        # File caches leave their files readable by everyone (0644); these list the cloud's nodes and
        # addresses. Ansible may wrap the key (a schema prefix), so files are matched by their ending.
        folder = getattr(getattr(self._cache, '_plugin', None), '_cache_dir', None)
        if not folder or not os.path.isdir(folder):
            return
        keys = [k for k in self._cache.keys() if isinstance(k, str) and k.startswith(self.NAME)]
        for name in os.listdir(folder):
            if any(name.endswith(key) for key in keys):
                try:
                    os.chmod(os.path.join(folder, name), stat.S_IRUSR | stat.S_IWUSR)
                except OSError:
                    pass

    # ------------------------------------------------------------------ clouds

    def _cloud_regions(self):
        """(CloudRegion list, errors) for the selected clouds of clouds.yaml."""
        paths = self.get_option('clouds_yaml_path') or []
        config = os_config_loader.OpenStackConfig(config_files=list(paths) + list(os_config_loader.CONFIG_FILES))
        names = self.get_option('clouds') or []
        if not names:
            return config.get_all(), []
        regions, errors = [], []
        for name in names:
            try:
                regions.append(config.get_one(cloud=name))
            except Exception as exc:  # an unknown cloud name is a configuration error of that cloud
                errors.append("cloud '%s': %s" % (name, to_native(exc)))
        return regions, errors

    def _fingerprint(self, regions):
        return {
            'format': CACHE_FORMAT,
            'clouds': [cloud_identity(r) for r in regions],
            'clusters': sorted(self.get_option('clusters') or []),
            'skip_statuses': sorted(self.get_option('skip_statuses') or []),
            'images': bool(self.get_option('ssh_user_by_image')),
        }

    def _cached(self, key, fingerprint):
        try:
            data = self._cache[key]
        except KeyError:
            return None
        if not isinstance(data, dict) or data.get('fingerprint') != fingerprint:
            self.display.vvv('hpcops.coe.clusters: cache entry is for other clouds or options; ignoring it')
            return None
        self.display.vvv('hpcops.coe.clusters: using the cached inventory')
        return data

    def _fetch(self, regions, fingerprint):
        """({'fingerprint', 'clouds': [...]}, [error messages]) read from the clouds."""
        max_workers = max(1, self.get_option('max_workers') or 1)
        results = []
        with ThreadPoolExecutor(max_workers=max_workers) as cluster_pool:
            if len(regions) > 1:
                with ThreadPoolExecutor(max_workers=len(regions)) as cloud_pool:
                    results = list(cloud_pool.map(lambda r: self._fetch_cloud(r, cluster_pool), regions))
            else:
                results = [self._fetch_cloud(r, cluster_pool) for r in regions]

        errors = []
        clouds = []
        listed = set()
        for result in results:
            errors.extend(result.pop('errors'))
            listed.update(result.pop('listed'))
            clouds.append(result)
        # Every cloud answered yet none has it: most likely a typo.
        if not errors:
            for name in sorted(set(self.get_option('clusters') or []) - listed):
                self.display.warning("hpcops.coe.clusters: no cluster named '%s' in the selected clouds" % name)
        return {'fingerprint': fingerprint, 'clouds': clouds}, errors

    def _fetch_cloud(self, region, pool):
        name = region.name
        out = {'cloud': name, 'region': region.get_region_name(), 'clusters': [], 'images': {},
               'errors': [], 'listed': set()}
        conn = None
        try:
            conn = openstack.connection.Connection(config=region)
            retry_refused_tokens(getattr(conn, 'session', None))
            clusters = discovery.list_clusters(conn)
            out['listed'].update(c.get(k) for c in clusters for k in ('uuid', 'name'))
            selected = [c for c in clusters if self._selected(c)]
            results = discovery.discover_nodes(conn, selected, all_clusters=clusters, executor=pool,
                                               page_size=self.get_option('page_size'))
            for item in results:
                if item['error']:
                    out['errors'].append("cloud '%s', cluster '%s': %s" % (
                        name, item['cluster']['name'] or item['cluster']['id'], item['error']))
                else:
                    del item['error']
                    out['clusters'].append(item)
            if self.get_option('ssh_user_by_image'):
                out['images'] = self._images(conn, out['clusters'], pool)
        except Exception as exc:  # the whole cloud is unusable: report it with the cloud's name
            out['errors'].append("cloud '%s': %s" % (name, to_native(exc) or exc.__class__.__name__))
            out['clusters'] = []
        finally:
            if conn is not None:
                conn.close()
        return out

    def _selected(self, cluster):
        if cluster.get('status') in (self.get_option('skip_statuses') or []):
            self.display.vvv('hpcops.coe.clusters: skipping cluster %s in status %s'
                             % (cluster.get('name'), cluster.get('status')))
            return False
        wanted = self.get_option('clusters') or []
        return not wanted or cluster.get('uuid') in wanted or cluster.get('name') in wanted

    @staticmethod
    def _images(conn, clusters, pool):
        """{image id: {'name', 'os_distro'}} for the images the nodes run (one GET per image)."""
        ids = sorted(set(n['image'] for c in clusters for n in c['nodes'] if n.get('image')))

        def lookup(image_id):
            try:
                image = conn.image.get_image(image_id)
            except Exception:  # an image deleted since: its nodes fall back to the other rules
                return image_id, {}
            return image_id, {'name': image.name, 'os_distro': getattr(image, 'os_distro', None)}

        return dict(pool.map(lookup, ids))

    def _report(self, errors):
        if not errors:
            return
        if self.get_option('fail_on_errors'):
            raise AnsibleParserError('hpcops.coe.clusters: %s' % '; '.join(errors))
        for error in errors:
            self.display.warning('hpcops.coe.clusters: %s' % error)

    # ------------------------------------------------------------------ inventory

    @staticmethod
    def _ssh_user(cluster, node, images, rules):
        """The cluster's label, else the image's entry in ssh_user_by_image, else ssh_user."""
        label, by_image, default = rules
        if label and (cluster.get('labels') or {}).get(label):
            return cluster['labels'][label]
        if by_image and node.get('image'):
            image = images.get(node['image']) or {}
            for key in (node['image'], image.get('name'), image.get('os_distro')):
                if key and key in by_image:
                    return by_image[key]
        return default

    def _populate(self, data):
        entries = []
        for cloud in data['clouds']:
            for item in cloud['clusters']:
                for node in item['nodes']:
                    entries.append((cloud, item['cluster'], node))

        by_id = self.get_option('inventory_hostname') == 'id'
        name_count = Counter(node['name'] for _cloud, _cluster, node in entries)
        # Options read once, not once per host.
        strict = self.get_option('strict')
        compose, groups, keyed_groups = (self.get_option(k) for k in ('compose', 'groups', 'keyed_groups'))
        host_network = self.get_option('host_network')
        ssh_rules = (self.get_option('ssh_user_label'), self.get_option('ssh_user_by_image') or {},
                     self.get_option('ssh_user'))
        for cloud, cluster, node in entries:
            hostname = node['id'] if by_id or name_count[node['name']] > 1 else node['name']
            host_vars = self._host_vars(cloud, cluster, node)
            address = choose_ansible_host(node['addresses'], host_network)
            if address:
                host_vars['ansible_host'] = address
            user = self._ssh_user(cluster, node, cloud.get('images') or {}, ssh_rules)
            if user:
                host_vars['ansible_user'] = user
            self.inventory.add_host(hostname)
            for key, value in host_vars.items():
                self.inventory.set_variable(hostname, key, value)
            for group in self._groups(cloud, cluster, node):
                group = self.inventory.add_group(group)
                self.inventory.add_child(group, hostname)
            self._set_composite_vars(compose, host_vars, hostname, strict=strict)
            self._add_host_to_composed_groups(groups, host_vars, hostname, strict=strict)
            self._add_host_to_keyed_groups(keyed_groups, host_vars, hostname, strict=strict)

    @staticmethod
    def _host_vars(cloud, cluster, node):
        addresses = node['addresses']
        return {
            'coe_cloud': cloud['cloud'],
            'coe_region': cloud['region'],
            'coe_cluster': cluster['name'],
            'coe_cluster_id': cluster['id'],
            'coe_cluster_status': cluster['status'],
            'coe_cluster_labels': cluster.get('labels') or {},
            'coe_driver': node['driver'],
            'coe_role': node['role'],
            'coe_nodegroup': node['nodegroup'],
            'coe_server_id': node['id'],
            'coe_server_name': node['name'],
            'coe_status': node['status'],
            'coe_flavor': node['flavor'],
            'coe_image': node['image'],
            'coe_availability_zone': node.get('availability_zone'),
            'coe_addresses': addresses,
            'coe_ips': dict((net, a['fixed'][0]) for net, a in addresses.items() if a['fixed']),
            'coe_floating_ip': next((ip for a in addresses.values() for ip in a['floating']), None),
        }

    @staticmethod
    def _groups(cloud, cluster, node):
        return node_groups(cluster['name'] or cluster['id'], node['role'], node['nodegroup'], node['driver'],
                           cloud['cloud'])
