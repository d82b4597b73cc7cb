# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the unit tests stand on instead of Ansible, an API server or a cloud.

run_module() runs a module's main() as Ansible would and returns how it ended;
run_kube_module() and run_openstack_module() do so with FakeKube or an
in-memory connection in place of the real client. FakeKube is Kube's interface
over dicts; FakeCloud answers the OpenStack routes discovery uses; Clock is a
clock whose sleeps only move it on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import copy
import itertools
import json
import re
import threading
import time
from unittest import mock
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from requests.structures import CaseInsensitiveDict

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpcops.coe.plugins.module_utils import kube, kube_module


class ModuleExit(Exception):
    """How a module run ended: its result and whether it failed."""

    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(json.dumps(result, default=str)[:2000])
        self.result = result
        self.failed = failed


def exit_json(self, **kwargs):
    raise ModuleExit(kwargs, False)


def fail_json(self, msg=None, **kwargs):
    kwargs['msg'] = msg
    raise ModuleExit(kwargs, True)


def run_module(main, args, check=False, diff=False, patches=()):
    """Run main() with `args` as the task's arguments (in check or diff mode when asked), with the
    mock.patch context managers `patches` applied; returns the ModuleExit it ended in."""
    if check:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with contextlib.ExitStack() as stack:
        stack.enter_context(patch_module_args(args))
        stack.enter_context(mock.patch.object(basic.AnsibleModule, 'exit_json', exit_json))
        stack.enter_context(mock.patch.object(basic.AnsibleModule, 'fail_json', fail_json))
        for patch in patches:
            stack.enter_context(patch)
        with pytest.raises(ModuleExit) as exited:
            main()
    return exited.value


def run_kube_module(main, fake, args, check=False, diff=False):
    """run_module() for a module over CoeKubeModule, with `fake` (a FakeKube) as its client."""
    def factory(module):
        fake.module, fake.params, fake.check_mode = module, module.params, module.check_mode
        return fake

    return run_module(main, args, check=check, diff=diff, patches=[mock.patch.object(kube_module, 'Kube', factory)])


def run_openstack_module(main, conn, args, check=False, diff=False):
    """run_module() for a module over openstack.cloud's OpenStackModule, with `conn` in place of
    openstacksdk's connection."""
    from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule

    args.setdefault('cloud', 'sim')
    return run_module(main, args, check=check, diff=diff, patches=[mock.patch.object(
        OpenStackModule, 'openstack_cloud_from_module', return_value=(mock.MagicMock(), conn))])


class Clock(object):
    """A clock to call for the time, whose sleep() is recorded and moves it on."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


class FakeKube(object):
    """Kube's interface over dicts: objects keyed by (apiVersion, kind, namespace, name)."""

    served_kinds = None  # None: everything is served

    def __init__(self, module=None, nodes=None, objects=None, check_mode=False, on_apply=None):
        self.module = module
        self.params = module.params if module else {}
        self.check_mode = module.check_mode if module else check_mode
        self.nodes_list = nodes or []
        self.objects = objects if objects is not None else {}
        self.applied = []
        self.deleted = []
        self.deleted_collections = []
        self.created = []
        self.warnings = []
        self.on_apply = on_apply
        self.wait_calls = []
        self.logs = {}
        self.log_reads = []

    def served(self, api_version, kind):
        return self.served_kinds is None or (api_version, kind) in self.served_kinds

    def get(self, api_version, kind, name, namespace=None):
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj)

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        out = []
        for (av, k, ns, _name), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0])):
            if (av, k) == (api_version, kind) and (namespace is None or ns == namespace):
                labels = obj.get('metadata', {}).get('labels') or {}
                if label_selector:
                    key, value = label_selector.partition('=')[::2]
                    if labels.get(key) != value:
                        continue
                out.append(copy.deepcopy(obj))
        return out

    def nodes(self):
        return copy.deepcopy(self.nodes_list)

    def apply(self, definition, force=None):
        meta = definition['metadata']
        key = (definition['apiVersion'], definition['kind'], meta.get('namespace'), meta['name'])
        before = self.objects.get(key)
        after = copy.deepcopy(definition)
        if before and 'status' in before:
            after['status'] = copy.deepcopy(before['status'])
        self.applied.append(copy.deepcopy(definition))
        if not self.check_mode:
            self.objects[key] = after
            if self.on_apply:
                self.on_apply(self, after)
        left, right = kube.strip_server_fields(before), kube.strip_server_fields(after)
        return {'changed': left != right, 'before': before, 'after': after, 'diff': {'before': left, 'after': right}}

    def delete(self, api_version, kind, name, namespace=None):
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            return False
        self.deleted.append(key)
        if not self.check_mode:
            del self.objects[key]
        return True

    def delete_collection(self, api_version, kind, namespace, label_selector):
        self.deleted_collections.append((api_version, kind, namespace, label_selector))
        if self.check_mode:
            return False
        for obj in self.list(api_version, kind, namespace, label_selector=label_selector):
            del self.objects[(api_version, kind, namespace, obj['metadata']['name'])]
        return True

    def create(self, definition):
        meta = definition['metadata']
        self.created.append(copy.deepcopy(definition))
        obj = copy.deepcopy(definition)
        obj['metadata']['uid'] = 'uid-%d' % len(self.created)
        self.objects[(definition['apiVersion'], definition['kind'], meta.get('namespace'), meta['name'])] = obj
        if self.on_apply:
            self.on_apply(self, obj)
        return obj

    def wait(self, what, fetch, is_done, timeout=None, sleep=None, is_failed=None):
        self.wait_calls.append(what)
        value = fetch()
        if is_done(value):
            return True, value, 0.0
        return False, value, float(timeout if timeout is not None else self.params.get('wait_timeout', 0))

    def pod_log(self, namespace, name, tail_lines=20):
        self.log_reads.append((namespace, name))
        return self.logs.get((namespace, name), '')

    def events_for(self, obj):
        return []

    def fail(self, msg, **kwargs):
        if self.warnings:
            kwargs.setdefault('warnings', []).extend(self.warnings)
        self.module.fail_json(msg=msg, **kwargs)

    def exit(self, **kwargs):
        self.module.exit_json(**kwargs)


def node(name, kernel='5.14.0-427.13.1.el9_4.x86_64', labels=None, allocatable=None, taints=None,
         annotations=None):
    return {'apiVersion': 'v1', 'kind': 'Node',
            'metadata': {'name': name, 'labels': dict(labels or {}), 'annotations': dict(annotations or {})},
            'spec': {'taints': taints} if taints else {},
            'status': {'nodeInfo': {'kernelVersion': kernel}, 'allocatable': dict(allocatable or {})}}


# ---------------------------------------------------------------- OpenStack
# An in-memory cloud answering the few routes discovery uses, recording every call; the discovery,
# Heat, module and inventory tests use it.

class FakeResponse:
    def __init__(self, status, body=None):
        self.status_code = status
        self._body = body
        self.content = b'' if body is None else json.dumps(body).encode()
        self.text = self.content.decode()
        self.reason = 'fake'
        self.headers = CaseInsensitiveDict({'Content-Type': 'application/json'} if body is not None else {})

    def json(self):
        if self._body is None:
            raise ValueError('no body')
        return self._body


class FakeAdapter:
    def __init__(self, cloud, service):
        self.cloud = cloud
        self.service_type = service

    def get(self, url, params=None, headers=None, raise_exc=False):
        parsed = urlparse(url)
        # Next links are absolute and carry the endpoint's version prefix.
        parsed = parsed._replace(path=re.sub(r'^/v2\.1(?=/)', '', parsed.path))
        query = dict((k, v if len(v) > 1 else v[0]) for k, v in parse_qs(parsed.query).items())
        query.update(params or {})
        self.cloud.calls.append((self.service_type, parsed.path, query, dict(headers or {})))
        fault = self.cloud.faults.get((self.service_type, parsed.path))
        if fault:
            return FakeResponse(fault[0], fault[1])
        return getattr(self.cloud, 'route_' + self.service_type.replace('-', '_'))(parsed.path, query, headers or {})


class FakeSession:
    """The connection's keystoneauth session as python-magnumclient uses it: Magnum requests go to the fake."""

    def __init__(self, cloud):
        self.cloud = cloud

    def get_endpoint(self, service_type=None, **kwargs):
        return 'http://magnum.fake/v1' if service_type == 'container-infra' else None

    def request(self, url, method, headers=None, **kwargs):
        assert method == 'GET', 'discovery only reads Magnum'
        return self.cloud.container_infrastructure_management.get(url, headers=headers)


class FakeConfig:
    def get_region_name(self, service_type):
        return 'RegionOne'

    def get_interface(self, service_type):
        return 'public'

    def get_endpoint(self, service_type):
        return None


def make_server(name, server_id, addresses=None, flavor='bm.large', image='img-fcos', status='ACTIVE'):
    nets = {}
    for net, entries in (addresses or {}).items():
        nets[net] = [{'addr': addr, 'version': 6 if ':' in addr else 4, 'OS-EXT-IPS:type': kind,
                      'OS-EXT-IPS-MAC:mac_addr': 'fa:16:3e:%s' % server_id[-8:]} for addr, kind in entries]
    return {'id': server_id, 'name': name, 'status': status, 'addresses': nets,
            'flavor': {'original_name': flavor, 'vcpus': 64}, 'image': {'id': image} if image else '',
            'OS-EXT-AZ:availability_zone': 'nova'}


# IDs are unique across clouds, as UUIDs are.
_SEQUENCE = itertools.count(1)


class FakeCloud:
    """Magnum, Heat and Nova answers shaped like the real APIs (as far as discovery reads them)."""

    def __init__(self, nova_page=1000, nodegroup_api=True, max_nova_microversion=(2, 96)):
        self.calls = []
        self.faults = {}
        self.clusters = []
        self.nodegroups = {}
        self.stacks = {}
        self.resources = {}
        self.servers = []
        self.flavors = {}
        self.images = {}
        self.nova_page = nova_page
        self.nodegroup_api = nodegroup_api
        self.max_nova_microversion = max_nova_microversion
        self.compute = FakeAdapter(self, 'compute')
        self.orchestration = FakeAdapter(self, 'orchestration')
        self.container_infrastructure_management = FakeAdapter(self, 'container-infra')
        self.session = FakeSession(self)
        self.config = FakeConfig()
        self.image = FakeImageProxy(self)
        self.closed = False
        self._seq = 0

    def close(self):
        self.closed = True

    def _id(self, prefix='id'):
        self._seq = next(_SEQUENCE)
        return '%08x-0000-4000-8000-%012x' % (self._seq, self._seq) if prefix == 'uuid' else '%s-%d' % (prefix, self._seq)

    def count(self, service=None, path_re=None):
        return len([c for c in self.calls if (service is None or c[0] == service)
                    and (path_re is None or re.search(path_re, c[1]))])

    # ---- scenario builders

    def add_server(self, name, **kwargs):
        server = make_server(name, kwargs.pop('server_id', None) or self._id('uuid'), **kwargs)
        self.servers.append(server)
        return server

    def _addresses(self, index, net='cluster-net', floating=False):
        addrs = [('10.0.%d.%d' % (index // 250, index % 250 + 2), 'fixed')]
        if floating:
            addrs.append(('172.24.%d.%d' % (index // 250, index % 250 + 2), 'floating'))
        return {net: addrs}

    def add_capi_cluster(self, name, capi_name, masters=1, workers=None, status='CREATE_COMPLETE', labels=None,
                         extra_ngs=()):
        """workers: {nodegroup name: count}; servers named like the CAPI drivers name them."""
        uuid = self._id('uuid')
        workers = workers if workers is not None else {'default-worker': 2}
        cluster = {'uuid': uuid, 'name': name, 'status': status, 'stack_id': capi_name,
                   'labels': labels or {}, 'master_count': masters,
                   'node_count': sum(workers.values()), 'cluster_template_id': 'tpl', 'keypair': 'kp'}
        self.clusters.append(cluster)
        ngs = [{'uuid': self._id('uuid'), 'name': 'default-master', 'role': 'master', 'is_default': True,
                'stack_id': capi_name, 'node_count': masters}]
        for ng_name, count in workers.items():
            ngs.append({'uuid': self._id('uuid'), 'name': ng_name, 'role': 'worker',
                        'is_default': ng_name == 'default-worker', 'stack_id': capi_name, 'node_count': count})
        for ng_name in extra_ngs:
            ngs.append({'uuid': self._id('uuid'), 'name': ng_name, 'role': 'worker', 'is_default': False,
                        'stack_id': capi_name, 'node_count': 0})
        self.nodegroups[uuid] = ngs
        n = len(self.servers)
        for i in range(masters):
            self.add_server('%s-control-plane-%05d-x%d' % (capi_name, i, i), addresses=self._addresses(n + i))
        n = len(self.servers)
        for ng_name, count in workers.items():
            for i in range(count):
                self.add_server('%s-%s-r%04d-q%d' % (capi_name, ng_name, i, i),
                                addresses=self._addresses(n + i, floating=True))
            n = len(self.servers)
        return cluster

    def _heat_stack(self, stack_name, groups, status='CREATE_COMPLETE', server_names=None):
        """A stack whose ResourceGroups hold one member stack per server, as Heat nests them."""
        stack_id = self._id('uuid')
        self.stacks[stack_id] = {'id': stack_id, 'stack_name': stack_name, 'stack_status': status,
                                 'outputs': [{'output_key': 'api_address', 'output_value': '10.0.0.2'}]}
        rows = []
        base = 'http://heat/v1/p/stacks'

        def link(sname, sid):
            return [{'rel': 'stack', 'href': '%s/%s/%s' % (base, sname, sid)}]

        for group, (server_resource, server_names_in_group) in groups.items():
            group_stack = self._id('uuid')
            rows.append({'resource_name': group, 'resource_type': 'OS::Heat::ResourceGroup',
                         'physical_resource_id': group_stack, 'resource_status': 'CREATE_COMPLETE',
                         'links': link(stack_name, stack_id)})
            for i, server in enumerate(server_names_in_group):
                member_stack = self._id('uuid')
                rows.append({'resource_name': str(i), 'resource_type': 'file:///member.yaml',
                             'physical_resource_id': member_stack, 'resource_status': 'CREATE_COMPLETE',
                             'parent_resource': group, 'links': link('%s-%s' % (stack_name, group), group_stack)})
                rows.append({'resource_name': server_resource, 'resource_type': 'OS::Nova::Server',
                             'physical_resource_id': server['id'] if server else '',
                             'resource_status': 'CREATE_COMPLETE' if server else 'CREATE_IN_PROGRESS',
                             'parent_resource': str(i), 'links': link('%s-%d' % (stack_name, i), member_stack)})
        self.resources[stack_id] = rows
        return self.stacks[stack_id]

    def add_heat_cluster(self, name, stack_name, masters=1, workers=2, status='CREATE_COMPLETE',
                         extra_ngs=None, labels=None, server_resources=('kube-master', 'kube-minion'),
                         unbuilt_workers=0):
        """extra_ngs: {nodegroup name: count}, each with a stack of its own."""
        uuid = self._id('uuid')
        n = len(self.servers)
        master_servers = [self.add_server('%s-master-%d' % (stack_name, i), addresses=self._addresses(n + i))
                          for i in range(masters)]
        n = len(self.servers)
        worker_servers = [self.add_server('%s-node-%d' % (stack_name, i),
                                          addresses=self._addresses(n + i, floating=True))
                          for i in range(workers)] + [None] * unbuilt_workers
        stack = self._heat_stack(stack_name, {'kube_masters': (server_resources[0], master_servers),
                                              'kube_minions': (server_resources[1], worker_servers)})
        cluster = {'uuid': uuid, 'name': name, 'status': status, 'stack_id': stack['id'], 'labels': labels or {},
                   'master_count': masters, 'node_count': workers, 'cluster_template_id': 'tpl', 'keypair': 'kp'}
        self.clusters.append(cluster)
        ngs = [{'uuid': self._id('uuid'), 'name': 'default-master', 'role': 'master', 'is_default': True,
                'stack_id': stack['id']},
               {'uuid': self._id('uuid'), 'name': 'default-worker', 'role': 'worker', 'is_default': True,
                'stack_id': stack['id']}]
        for ng_name, count in (extra_ngs or {}).items():
            ng_stack_name = '%s-%s-%s' % (name[:20], ng_name[:9], 'ngid%08d' % self._seq)
            n = len(self.servers)
            ng_servers = [self.add_server('%s-node-%d' % (ng_stack_name, i), addresses=self._addresses(n + i))
                          for i in range(count)]
            ng_stack = self._heat_stack(ng_stack_name, {'kube_minions': ('kube-minion', ng_servers)})
            ngs.append({'uuid': self._id('uuid'), 'name': ng_name, 'role': 'worker', 'is_default': False,
                        'stack_id': ng_stack['id']})
        self.nodegroups[uuid] = ngs
        return cluster

    # ---- routes

    def route_container_infra(self, path, query, headers):
        path = path.rstrip('/')  # Magnum, like python-magnumclient, takes /clusters/ for /clusters
        if path == '/clusters':
            return FakeResponse(200, {'clusters': self.clusters, 'next': None})
        match = re.match(r'^/clusters/([^/]+)/nodegroups$', path)
        if match:
            if not self.nodegroup_api:
                return FakeResponse(406, {'errors': [{'title': 'Not Acceptable', 'detail': 'Version 1.9 not supported'}]})
            ngs = self.nodegroups.get(match.group(1))
            if ngs is None:
                return FakeResponse(404, {'errors': [{'title': 'Not Found', 'detail': 'Cluster %s could not be found' % match.group(1)}]})
            return FakeResponse(200, {'nodegroups': ngs, 'next': None})
        return FakeResponse(404, {'errors': [{'title': 'Not Found', 'detail': 'no route %s' % path}]})

    def route_orchestration(self, path, query, headers):
        parts = path.strip('/').split('/')
        if parts[0] != 'stacks':
            return FakeResponse(404, {'error': {'message': 'no route'}})
        if len(parts) == 1:
            ids = query.get('id') or []
            ids = [ids] if isinstance(ids, str) else ids
            listed = [dict((k, v) for k, v in s.items() if k != 'outputs') for s in self.stacks.values()
                      if not ids or s['id'] in ids]
            return FakeResponse(200, {'stacks': listed})
        if len(parts) == 2:
            for stack in self.stacks.values():
                if parts[1] in (stack['id'], stack['stack_name']):
                    # Heat leaves the outputs out, rather than resolving them, when asked to.
                    if str(query.get('resolve_outputs', 'true')).lower() == 'false':
                        return FakeResponse(200, {'stack': dict((k, v) for k, v in stack.items() if k != 'outputs')})
                    return FakeResponse(200, {'stack': stack})
            return FakeResponse(404, {'explanation': 'not found', 'error': {'message': 'The Stack (%s) could not be found.' % parts[1]}})
        if len(parts) == 4 and parts[3] == 'resources':
            rows = list(self.resources.get(parts[2], []))
            types = query.get('type')
            if types:
                types = [types] if isinstance(types, str) else types
                rows = [r for r in rows if r['resource_type'] in types]
            return FakeResponse(200, {'resources': rows})
        return FakeResponse(404, {'error': {'message': 'no route'}})

    def _microversion(self, headers):
        value = headers.get('OpenStack-API-Version')
        if not value:
            return (2, 1)
        major, minor = value.split()[-1].split('.')
        return (int(major), int(minor))

    def route_compute(self, path, query, headers):
        version = self._microversion(headers)
        if version > self.max_nova_microversion:
            return FakeResponse(406, {'computeFault': {'message': 'Version %d.%d is not supported' % version}})

        def shaped(server):
            if version >= (2, 47):
                return server
            flavor = server['flavor']['original_name']
            return dict(server, flavor={'id': self.flavors.setdefault(flavor, 'fl-' + flavor)})

        if path == '/servers/detail':
            servers = self.servers
            if query.get('name'):
                servers = [s for s in servers if re.search(query['name'], s['name'])]
            limit = int(query.get('limit') or self.nova_page)
            start = 0
            if query.get('marker'):
                start = [s['id'] for s in servers].index(query['marker']) + 1
            page = servers[start:start + limit]
            body = {'servers': [shaped(s) for s in page]}
            if len(page) == limit and start + limit < len(servers) + 1 and page:
                nxt = dict((k, v) for k, v in query.items() if k != 'marker')
                nxt.update(limit=limit, marker=page[-1]['id'])
                body['servers_links'] = [{'rel': 'next', 'href': 'http://nova/v2.1/servers/detail?' + urlencode(nxt)}]
            return FakeResponse(200, body)
        match = re.match(r'^/servers/([^/]+)$', path)
        if match:
            for server in self.servers:
                if server['id'] == match.group(1):
                    return FakeResponse(200, {'server': shaped(server)})
            return FakeResponse(404, {'itemNotFound': {'message': 'Instance could not be found'}})
        match = re.match(r'^/flavors/([^/]+)$', path)
        if match:
            for name, flavor_id in self.flavors.items():
                if flavor_id == match.group(1):
                    return FakeResponse(200, {'flavor': {'id': flavor_id, 'name': name}})
        return FakeResponse(404, {'itemNotFound': {'message': 'no route'}})


class FakeImage:
    def __init__(self, name, os_distro):
        self.name = name
        self.os_distro = os_distro


class FakeImageProxy:
    def __init__(self, cloud):
        self.cloud = cloud

    def get_image(self, image_id):
        self.cloud.calls.append(('image', '/v2/images/%s' % image_id, {}, {}))
        if image_id not in self.cloud.images:
            raise LookupError(image_id)
        return self.cloud.images[image_id]


def module_ok(main, conn, **args):
    """The result of a successful, read-only module run."""
    out = run_openstack_module(main, conn, args)
    assert not out.failed, out.result.get('msg')
    assert out.result['changed'] is False
    return out.result


def module_failed(main, conn, **args):
    """The result of a module run that must fail."""
    out = run_openstack_module(main, conn, args)
    assert out.failed, out.result
    return out.result


# ---------------------------------------------------------------- openstacksdk Connection
# FakeConn stands in for an openstacksdk Connection (the compute, network and baremetal proxies
# server_interfaces uses) and keeps the Nova and Neutron behaviour that matters there: attachments
# serialized per server, 409 while busy, 404 for unknown networks and vanished servers, 500 when a
# bare-metal node has no free NIC on the physical network, Nova-created ports deleted on detach,
# user-created ports kept.

class FakeHttpError(Exception):
    def __init__(self, status, details):
        super(FakeHttpError, self).__init__('HttpException: %d: %s' % (status, details))
        self.status_code = status
        self.details = details


class FakeConn:
    """A tiny, thread-safe Nova + Neutron + Ironic."""

    def __init__(self, attach_time=0.0, bind_polls=0):
        self.lock = threading.RLock()
        self.ids = itertools.count(1)
        self.clock = itertools.count(1)
        self.servers = {}
        self.networks = {}
        self.subnets = {}
        self.ports = {}
        self.capacity = {}          # server id -> {physnet: NICs besides the boot NIC}
        self.conflicts = {}         # server id -> number of 409s still to answer
        self.vanish_on_attach = set()
        self.fail_attach = {}       # server id -> (status, details)
        self.calls = []
        self.attach_time = attach_time
        self.bind_polls = bind_polls
        self.server_locks = {}
        self.active = 0
        self.max_active = 0
        self.compute = _Compute(self)
        self.network = _Network(self)
        self.baremetal = _Baremetal(self)
        self.ironic = None          # node -> list of physnets, when "admin"
        self.flavor_specs = {}      # flavor name -> extra specs, as the flavor API shows them

    # ---- building the world
    def _id(self, prefix):
        return '%s-%04d' % (prefix, next(self.ids))

    def _stamp(self):
        return '2026-01-01T00:%02d:%02dZ' % divmod(next(self.clock), 60)

    def add_network(self, name, cidr, physnet=None, mtu=1500, dhcp=True):
        net = {'id': self._id('net'), 'name': name, 'mtu': mtu, 'provider_physical_network': physnet}
        self.networks[net['id']] = net
        sub = {'id': self._id('sub'), 'name': name + '-subnet', 'network_id': net['id'], 'cidr': cidr,
               'gateway_ip': cidr.rsplit('.', 1)[0] + '.1', 'is_dhcp_enabled': dhcp, 'ip_version': 4,
               'next': 10}
        self.subnets[sub['id']] = sub
        return net

    def add_server(self, name, network, status='ACTIVE', flavor='bm.std', extra_specs=None, nics=None):
        server = {'id': self._id('srv'), 'name': name, 'status': status,
                  'flavor': {'original_name': flavor, 'extra_specs': extra_specs or {}},
                  'addresses': {}, 'hypervisor_hostname': None}
        self.servers[server['id']] = server
        self.flavor_specs.setdefault(flavor, dict(extra_specs or {}))
        if nics is not None:
            self.capacity[server['id']] = dict(nics)
        self._new_port(network['id'], server['id'], owner='nova')
        return server

    def add_port(self, network, name='', ip=None, description=''):
        return self._new_port(network['id'], '', name=name, ip=ip, description=description)

    def _new_port(self, net_id, device_id, owner='user', name='', ip=None, description='', **extra):
        sub = [s for s in self.subnets.values() if s['network_id'] == net_id][0]
        if ip is None:
            ip = '%s.%d' % (sub['cidr'].rsplit('.', 1)[0], sub['next'])
            sub['next'] += 1
        n = next(self.ids)
        port = {'id': 'port-%04d' % n, 'name': name, 'network_id': net_id, 'device_id': device_id,
                'device_owner': 'compute:nova' if device_id else '',
                'mac_address': 'fa:16:3e:00:%02x:%02x' % divmod(n, 256),
                'fixed_ips': [{'ip_address': ip, 'subnet_id': sub['id']}],
                'status': 'ACTIVE' if device_id else 'DOWN', 'created_at': self._stamp(),
                'description': description, 'owner': owner, 'polls': 0}
        port.update(extra)
        self.ports[port['id']] = port
        return port

    def server_ports(self, server_id):
        return [p for p in self.ports.values() if p['device_id'] == server_id]

    def mutations(self):
        return [c for c in self.calls if c[0] in ('attach', 'detach', 'create_port', 'delete_port')]


class _Compute:
    def __init__(self, c):
        self.c = c

    def servers(self, details=True):
        with self.c.lock:
            self.c.calls.append(('list_servers',))
            return [dict(s) for s in self.c.servers.values()]

    def flavors(self, details=True):
        with self.c.lock:
            self.c.calls.append(('list_flavors',))
            return [{'id': 'flv-' + name, 'name': name, 'extra_specs': dict(specs)}
                    for name, specs in self.c.flavor_specs.items()]

    def fetch_flavor_extra_specs(self, flavor):
        with self.c.lock:
            self.c.calls.append(('get_flavor_extra_specs', flavor['name']))
            return {'extra_specs': dict(self.c.flavor_specs.get(flavor['name']) or {})}

    def get_server(self, server_id):
        with self.c.lock:
            self.c.calls.append(('get_server', server_id))
            if server_id not in self.c.servers:
                raise FakeHttpError(404, 'Instance %s could not be found.' % server_id)
            return dict(self.c.servers[server_id])

    def create_server_interface(self, server_id, net_id=None, port_id=None, fixed_ips=None):
        c = self.c
        with c.lock:
            c.calls.append(('attach', server_id, net_id or port_id))
            if server_id in c.vanish_on_attach:
                c.vanish_on_attach.discard(server_id)
                self._delete_server(server_id)
            if server_id not in c.servers:
                raise FakeHttpError(404, 'Instance %s could not be found.' % server_id)
            if c.conflicts.get(server_id):
                c.conflicts[server_id] -= 1
                raise FakeHttpError(409, "Cannot 'attach_interface' instance %s while it is in "
                                         "task_state interface_attaching" % server_id)
            if server_id in c.fail_attach:
                status, details = c.fail_attach[server_id]
                raise FakeHttpError(status, details)
            lock = c.server_locks.setdefault(server_id, threading.Lock())
        with lock:
            with c.lock:
                c.active += 1
                c.max_active = max(c.max_active, c.active)
            try:
                if c.attach_time:
                    time.sleep(c.attach_time)
                with c.lock:
                    return self._attach(server_id, net_id, port_id, fixed_ips)
            finally:
                with c.lock:
                    c.active -= 1

    def _attach(self, server_id, net_id, port_id, fixed_ips):
        c = self.c
        if net_id and port_id:
            raise FakeHttpError(400, 'Must not input both network_id and port_id')
        if port_id:
            port = c.ports.get(port_id)
            if port is None:
                raise FakeHttpError(404, 'Port %s could not be found.' % port_id)
            if port['device_id']:
                raise FakeHttpError(409, 'Port %s is still in use.' % port_id)
            net_id = port['network_id']
        elif net_id not in c.networks:
            raise FakeHttpError(404, 'Network %s could not be found.' % net_id)
        physnet = c.networks[net_id]['provider_physical_network']
        cap = c.capacity.get(server_id)
        if cap is not None and physnet:
            primary = sorted(c.server_ports(server_id), key=lambda p: p['created_at'])[0]['id']
            used = sum(1 for p in c.server_ports(server_id) if p['id'] != primary
                       and c.networks[p['network_id']]['provider_physical_network'] == physnet)
            if used >= cap.get(physnet, 0):
                raise FakeHttpError(500, 'Failed to attach network adapter device to %s' % server_id)
        if port_id:
            port['device_id'] = server_id
            port['device_owner'] = 'compute:nova'
            port['status'] = 'DOWN' if c.bind_polls else 'ACTIVE'
        else:
            ip = fixed_ips[0]['ip_address'] if fixed_ips else None
            if ip and any(f['ip_address'] == ip for p in c.ports.values() for f in p['fixed_ips']
                          if p['network_id'] == net_id):
                raise FakeHttpError(409, 'Fixed IP address %s is already in use on instance.' % ip)
            port = c._new_port(net_id, server_id, owner='nova', ip=ip)
            port['status'] = 'DOWN' if c.bind_polls else 'ACTIVE'
        return {'port_id': port['id'], 'net_id': net_id, 'mac_addr': port['mac_address'],
                'fixed_ips': [dict(f) for f in port['fixed_ips']], 'port_state': port['status']}

    def delete_server_interface(self, port_id, server=None, ignore_missing=True):
        c = self.c
        with c.lock:
            c.calls.append(('detach', server, port_id))
            if server not in c.servers:
                raise FakeHttpError(404, 'Instance %s could not be found.' % server)
            port = c.ports.get(port_id)
            if port is None or port['device_id'] != server:
                raise FakeHttpError(404, 'Port %s is not attached' % port_id)
            if port['owner'] == 'nova':
                del c.ports[port_id]
            else:
                port['device_id'] = ''
                port['device_owner'] = ''
                port['status'] = 'DOWN'

    def _delete_server(self, server_id):
        c = self.c
        del c.servers[server_id]
        for port in list(c.server_ports(server_id)):
            if port['owner'] == 'nova':
                del c.ports[port['id']]
            else:
                port['device_id'] = ''
                port['device_owner'] = ''


class _Network:
    def __init__(self, c):
        self.c = c

    def networks(self):
        with self.c.lock:
            self.c.calls.append(('list_networks',))
            return [dict(n) for n in self.c.networks.values()]

    def subnets(self, **filters):
        with self.c.lock:
            self.c.calls.append(('list_subnets',))
            return [dict(s) for s in self.c.subnets.values()]

    def ports(self, **filters):
        with self.c.lock:
            self.c.calls.append(('list_ports', tuple(filters.get('id') or ())))
            wanted = set(filters.get('id') or [])
            out = []
            for port in self.c.ports.values():
                if wanted and port['id'] not in wanted:
                    continue
                if filters.get('device_id') and port['device_id'] != filters['device_id']:
                    continue
                # Binding advances with every poll for the port itself (by ID), the fake's clock.
                if wanted:
                    self._bind_progress(port)
                out.append(dict(port))
            return out

    def _bind_progress(self, port):
        port['polls'] += 1
        if port['device_id'] and port['status'] != 'ACTIVE' and port['polls'] >= self.c.bind_polls:
            port['status'] = 'ACTIVE'

    def get_port(self, port_id):
        with self.c.lock:
            self.c.calls.append(('get_port', port_id))
            port = self.c.ports.get(port_id)
            if port is None:
                raise FakeHttpError(404, 'Port %s could not be found.' % port_id)
            self._bind_progress(port)
            return dict(port)

    def create_port(self, network_id, **attrs):
        with self.c.lock:
            self.c.calls.append(('create_port', network_id, attrs))
            ip = None
            if attrs.get('fixed_ips') and attrs['fixed_ips'][0].get('ip_address'):
                ip = attrs['fixed_ips'][0]['ip_address']
            extra = dict((k, v) for k, v in attrs.items() if k not in ('fixed_ips', 'name', 'description'))
            return dict(self.c._new_port(network_id, '', name=attrs.get('name', ''), ip=ip,
                                         description=attrs.get('description', ''), **extra))

    def delete_port(self, port_id, ignore_missing=True):
        with self.c.lock:
            self.c.calls.append(('delete_port', port_id))
            self.c.ports.pop(port_id, None)

    def update_port(self, port_id, **attrs):
        with self.c.lock:
            self.c.calls.append(('update_port', port_id, attrs))
            port = self.c.ports.get(port_id)
            if port is None:
                raise FakeHttpError(404, 'Port %s could not be found.' % port_id)
            port.update(attrs)
            return dict(port)


class _Baremetal:
    def __init__(self, c):
        self.c = c

    def ports(self, details=True):
        if self.c.ironic is None:
            raise FakeHttpError(403, 'Policy does not allow baremetal:port:get to be performed.')
        for node, physnets in self.c.ironic.items():
            for physnet in physnets:
                yield {'node_id': node, 'physical_network': physnet}


def cloud_with_networks():
    """A FakeConn with the tenant network and the two high-speed networks of the interface tests."""
    conn = FakeConn()
    conn.private = conn.add_network('private', '10.0.0.0/24')
    conn.eth = conn.add_network('eth-25g', '10.25.0.0/24', physnet='eth25', mtu=9000)
    conn.ib = conn.add_network('ib-100g', '10.100.0.0/24', physnet='ib', mtu=4092)
    return conn
