# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""In-memory Magnum and OpenStack SDK stand-ins for the module unit tests.

The fakes return plain dicts (the modules read fields through
magnum.field()), record every call, advance cluster/nodegroup statuses one
step per GET (`script`), and raise queued client exceptions (`fail_next`).
"""

import copy
import itertools
import types
import uuid as uuidlib
from unittest import mock

import pytest

from ansible.module_utils import basic

from magnumclient import exceptions as magnum_exc

from ansible_collections.hpcops.coe.plugins.module_utils import openstack as os_utils
from ansible_collections.hpcops.coe.plugins.module_utils import retries
from ansible_collections.hpcops.coe.plugins.module_utils import waiting
from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule
from ansible_collections.hpcops.coe.tests.unit.plugins import fakes

_counter = itertools.count(1)


def new_uuid():
    return str(uuidlib.UUID(int=next(_counter) + (7 << 100)))


def test_fake_uuid_is_a_uuid():
    from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
    assert mg.is_uuid(new_uuid())


class Fail(Exception):
    def __init__(self, result):
        super(Fail, self).__init__(result.get('msg'))
        self.result = result


class FakeClock(object):
    """Replaces the `time` module inside the waiting and retry helpers."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Manager(object):
    def __init__(self, fake, kind):
        self.fake = fake
        self.kind = kind

    def list(self, *args, **kwargs):
        """magnumclient's public list(): at most ``limit`` items after the one whose uuid is ``marker``."""
        self.fake.record('list', self.kind, (args, kwargs))
        self.fake.maybe_fail('list', self.kind)
        if self.kind == 'nodegroups':
            cluster_id = args[0]
            items = [self.fake.list_view_ng(g) for g in self.fake.nodegroups.get(self.fake.cluster(cluster_id)['uuid'], [])]
        elif self.kind == 'clusters':
            items = [self.fake.list_view_cluster(c) for c in self.fake.clusters_db if not c.get('_hidden_reads')]
        else:
            items = [copy.deepcopy(t) for t in self.fake.templates_db]
        marker, limit = kwargs.get('marker'), kwargs.get('limit')
        if marker is not None:
            items = items[[i['uuid'] for i in items].index(marker) + 1:]
        return items if limit is None else items[:limit]


class Clusters(Manager):
    def get(self, ident):
        self.fake.record('get', 'cluster', ident)
        self.fake.maybe_fail('get', 'cluster')
        c = self.fake.cluster(ident)
        if c.get('_hidden_reads'):
            # Magnum's conductor has not stored the new cluster yet
            c['_hidden_reads'] -= 1
            raise magnum_exc.NotFound('Cluster %s could not be found' % ident)
        self.fake.advance_cluster(c)
        if c.get('_gone'):
            self.fake.clusters_db.remove(c)
            raise magnum_exc.NotFound('Cluster %s could not be found' % ident)
        return self.fake.cluster_view(c)

    def create(self, **body):
        self.fake.record('create', 'cluster', body)
        self.fake.maybe_fail('create', 'cluster')
        c = self.fake.add_cluster(**body)
        c['_hidden_reads'] = self.fake.new_cluster_hidden_reads
        return {'uuid': c['uuid']}

    def delete(self, ident):
        self.fake.record('delete', 'cluster', ident)
        self.fake.maybe_fail('delete', 'cluster')
        c = self.fake.cluster(ident)
        c['status'] = 'DELETE_IN_PROGRESS'
        c['_script'] = [{'_gone': True}]

    def resize(self, uuid, node_count, nodes_to_remove=None, nodegroup=None):
        self.fake.record('resize', 'cluster', dict(uuid=uuid, node_count=node_count,
                                                   nodes_to_remove=nodes_to_remove, nodegroup=nodegroup))
        self.fake.maybe_fail('resize', 'cluster')
        c = self.fake.cluster(uuid)
        if nodegroup:
            g = self.fake.nodegroup(c['uuid'], nodegroup)
            g.update(status='UPDATE_IN_PROGRESS')
            g['_script'] = (list(self.fake.ng_resize_script)
                            or [{'status': 'UPDATE_COMPLETE', 'node_count': node_count}])
        else:
            c['status'] = 'UPDATE_IN_PROGRESS'
            c['_script'] = list(self.fake.resize_script) or [{'status': 'UPDATE_COMPLETE', 'node_count': node_count}]
        return {'uuid': c['uuid']}

    def upgrade(self, uuid, template, max_batch_size=1, nodegroup=None):
        self.fake.record('upgrade', 'cluster', dict(uuid=uuid, template=template, max_batch_size=max_batch_size))
        self.fake.maybe_fail('upgrade', 'cluster')
        c = self.fake.cluster(uuid)
        c['status'] = 'UPDATE_IN_PROGRESS'
        c['_script'] = [{'status': 'UPDATE_COMPLETE', 'cluster_template_id': template}]
        return {'uuid': c['uuid']}

    def update(self, uuid, patch):
        self.fake.record('patch', 'cluster', dict(uuid=uuid, patch=patch))
        self.fake.maybe_fail('patch', 'cluster')
        c = self.fake.cluster(uuid)
        c['status'] = 'UPDATE_IN_PROGRESS'
        c['_script'] = [dict({'status': 'UPDATE_COMPLETE'},
                             **dict((op['path'][1:], op['value']) for op in patch))]
        return {'uuid': c['uuid']}


class Templates(Manager):
    def get(self, ident):
        self.fake.record('get', 'template', ident)
        for t in self.fake.templates_db:
            if ident in (t['uuid'], t['name']):
                return copy.deepcopy(t)
        raise magnum_exc.NotFound('ClusterTemplate %s could not be found' % ident)

    def post(self, body):
        """The POST itself: Magnum takes every template field."""
        self.fake.record('create', 'template', body)
        self.fake.maybe_fail('create', 'template')
        return copy.deepcopy(self.fake.add_template(**body))

    def update(self, uuid, patch):
        self.fake.record('patch', 'template', dict(uuid=uuid, patch=patch))
        self.fake.maybe_fail('patch', 'template')
        t = [t for t in self.fake.templates_db if t['uuid'] == uuid][0]
        for op in patch:
            t[op['path'][1:]] = op['value']
        return copy.deepcopy(t)

    def delete(self, uuid):
        self.fake.record('delete', 'template', uuid)
        self.fake.templates_db[:] = [t for t in self.fake.templates_db if t['uuid'] != uuid]


class Nodegroups(Manager):
    def get(self, cluster_id, ident):
        self.fake.record('get', 'nodegroup', ident)
        c = self.fake.cluster(cluster_id)
        g = self.fake.nodegroup(c['uuid'], ident)
        self.fake.advance(g)
        if g.get('_gone'):
            self.fake.nodegroups[c['uuid']].remove(g)
            raise magnum_exc.NotFound('Nodegroup %s could not be found' % ident)
        return self.fake.public(g)

    def create(self, cluster_id, **body):
        self.fake.record('create', 'nodegroup', body)
        self.fake.maybe_fail('create', 'nodegroup')
        c = self.fake.cluster(cluster_id)
        g = self.fake.add_nodegroup(c['uuid'], status='CREATE_IN_PROGRESS',
                                    _script=[{'status': 'CREATE_COMPLETE'}], **body)
        return self.fake.public(g)

    def update(self, cluster_id, ident, patch):
        self.fake.record('patch', 'nodegroup', dict(ident=ident, patch=patch))
        self.fake.maybe_fail('patch', 'nodegroup')
        g = self.fake.nodegroup(self.fake.cluster(cluster_id)['uuid'], ident)
        for op in patch:
            g[op['path'][1:]] = op['value']
        return self.fake.public(g)

    def delete(self, cluster_id, ident):
        self.fake.record('delete', 'nodegroup', ident)
        self.fake.maybe_fail('delete', 'nodegroup')
        g = self.fake.nodegroup(self.fake.cluster(cluster_id)['uuid'], ident)
        g['status'] = 'DELETE_IN_PROGRESS'
        g['_script'] = [{'_gone': True}]


class Certificates(object):
    def __init__(self, fake):
        self.fake = fake

    def get(self, cluster_uuid):
        self.fake.record('get', 'ca', cluster_uuid)
        return {'cluster_uuid': cluster_uuid, 'pem': self.fake.ca.pem}

    def create(self, cluster_uuid, csr):
        self.fake.record('create', 'certificate', cluster_uuid)
        return {'cluster_uuid': cluster_uuid, 'csr': csr, 'pem': self.fake.ca.sign(csr)}


class FakeHttp(object):
    """magnumclient's http_client: its api_version, and json_request for what the managers do not cover."""

    def __init__(self, fake):
        self.fake = fake
        self.api_version = None

    def json_request(self, method, url, body=None, **kwargs):
        if (method, url) == ('POST', '/v1/clustertemplates'):
            return None, self.fake.cluster_templates.post(body)
        raise AssertionError('the fake Magnum does not serve %s %s' % (method, url))


class FakeMagnum(object):
    def __init__(self):
        self.clusters_db = []
        self.templates_db = []
        self.nodegroups = {}
        self.calls = []
        self.failures = {}
        self.resize_script = []
        self.ng_resize_script = []
        self.clock_ticks = 0
        # reads of a just-created cluster that answer 404 (as Magnum right after the 202)
        self.new_cluster_hidden_reads = 0
        self.max_version = (1, 12)
        self.ca = None
        self.http_client = FakeHttp(self)
        self.clusters = Clusters(self, 'clusters')
        self.cluster_templates = Templates(self, 'clustertemplates')
        self.nodegroups_mgr = Nodegroups(self, 'nodegroups')
        self.certificates = Certificates(self)

    # ---- bookkeeping

    def record(self, op, kind, arg):
        self.calls.append((op, kind, arg))

    def ops(self, kind=None):
        return [(call[0], call[1]) for call in self.calls if kind is None or call[1] == kind]

    def changes(self):
        return [(op, k, a) for op, k, a in self.calls if op not in ('get', 'list')]

    def fail_next(self, op, kind, *excs):
        self.failures.setdefault((op, kind), []).extend(excs)

    def maybe_fail(self, op, kind):
        queue = self.failures.get((op, kind))
        if queue:
            raise queue.pop(0)

    def touched(self, step):
        """A script step as Magnum saves it: a status change moves updated_at on, unless the step sets it."""
        step = dict(step)
        if 'status' in step and 'updated_at' not in step:
            self.clock_ticks += 1
            step['updated_at'] = '2026-01-02T00:00:00.%06d+00:00' % self.clock_ticks
        return step

    def advance(self, obj):
        script = obj.get('_script')
        if script:
            obj.update(self.touched(script.pop(0)))

    def advance_cluster(self, c):
        # A scripted node_count is the default worker group's, as a resize changes it.
        script = c.get('_script')
        if script:
            step = self.touched(script.pop(0))
            if 'node_count' in step:
                self.nodegroup(c['uuid'], 'default-worker')['node_count'] = step.pop('node_count')
            c.update(step)

    def cluster_view(self, c):
        """The cluster as Magnum shows it: node_count adds up every worker nodegroup."""
        view = self.public(c)
        groups = self.nodegroups.get(c['uuid'], [])
        if groups:
            view['node_count'] = sum(g['node_count'] for g in groups if g['role'] != 'master')
        return view

    @staticmethod
    def public(obj):
        return dict((k, copy.deepcopy(v)) for k, v in obj.items() if not k.startswith('_'))

    def list_view_cluster(self, c):
        c = self.cluster_view(c)
        keys = ('uuid', 'name', 'cluster_template_id', 'keypair', 'docker_volume_size', 'labels', 'node_count',
                'status', 'master_flavor_id', 'flavor_id', 'create_timeout', 'master_count', 'health_status',
                'stack_id', 'created_at')
        return dict((k, copy.deepcopy(c.get(k))) for k in keys)

    def list_view_ng(self, g):
        keys = ('uuid', 'name', 'flavor_id', 'node_count', 'role', 'is_default', 'image_id', 'status', 'stack_id')
        return dict((k, g.get(k)) for k in keys)

    # ---- lookups

    def cluster(self, ident):
        for c in self.clusters_db:
            if ident in (c['uuid'], c['name']):
                return c
        raise magnum_exc.NotFound('Cluster %s could not be found' % ident)

    def nodegroup(self, cluster_uuid, ident):
        for g in self.nodegroups.get(cluster_uuid, []):
            if ident in (g['uuid'], g['name']):
                return g
        raise magnum_exc.NotFound('Nodegroup %s could not be found' % ident)

    # ---- seeding

    def add_template(self, name='k8s', **fields):
        t = dict(uuid=new_uuid(), name=name, coe='kubernetes', image_id='img-1', cluster_distro='fedora-coreos',
                 server_type='vm', labels={}, tls_disabled=False, public=False, hidden=False,
                 keypair_id=None, flavor_id='m1.small', master_flavor_id='m1.small')
        t.update(fields)
        self.templates_db.append(t)
        return t

    def add_cluster(self, name='k8s', cluster_template_id=None, status='CREATE_IN_PROGRESS', script=None, **fields):
        tpl = [t for t in self.templates_db if t['uuid'] == cluster_template_id]
        labels = dict(tpl[0]['labels']) if tpl else {}
        if fields.get('labels') is not None:
            if fields.get('merge_labels'):
                labels.update(fields['labels'])
            else:
                labels = dict(fields['labels'])
        fields.pop('labels', None)
        fields.pop('merge_labels', None)
        uuid = new_uuid()
        c = dict(uuid=uuid, name=name, cluster_template_id=cluster_template_id, status=status,
                 status_reason=None, master_count=1, node_count=1, flavor_id='m1.small',
                 master_flavor_id='m1.small', keypair='ops', labels=labels, fixed_network=None,
                 fixed_subnet=None, floating_ip_enabled=True, master_lb_enabled=False, docker_volume_size=None,
                 create_timeout=60, api_address=None, master_addresses=[], node_addresses=[],
                 stack_id=new_uuid(), faults={}, created_at='2026-01-01T00:00:%02d+00:00' % (len(self.clusters_db)),
                 updated_at=None, health_status=None)
        c.update(fields)
        if script is None and status == 'CREATE_IN_PROGRESS':
            script = [{'status': 'CREATE_IN_PROGRESS'},
                      {'status': 'CREATE_COMPLETE', 'api_address': 'https://10.0.0.5:6443',
                       'master_addresses': ['10.0.0.5'], 'node_addresses': ['10.0.0.6']}]
        c['_script'] = list(script or [])
        self.clusters_db.append(c)
        self.nodegroups[uuid] = []
        self.add_nodegroup(uuid, name='default-master', role='master', is_default=True,
                           node_count=c['master_count'], status=status if status != 'CREATE_IN_PROGRESS'
                           else 'CREATE_COMPLETE')
        self.add_nodegroup(uuid, name='default-worker', role='worker', is_default=True,
                           node_count=c['node_count'], min_node_count=0, max_node_count=None,
                           status='CREATE_COMPLETE')
        return c

    def add_nodegroup(self, cluster_uuid, name, **fields):
        g = dict(uuid=new_uuid(), name=name, cluster_id=cluster_uuid, role='worker', is_default=False,
                 flavor_id='m1.small', image_id='img-1', node_count=1, min_node_count=0, max_node_count=None,
                 labels={}, status='CREATE_COMPLETE', status_reason=None, node_addresses=[],
                 docker_volume_size=None, stack_id=None, updated_at=None)
        g.update(fields)
        g.pop('merge_labels', None)
        self.nodegroups.setdefault(cluster_uuid, []).append(g)
        return g


class MagnumView(object):
    """What the module sees as `self.magnum`: magnumclient's attribute layout.

    FakeMagnum keeps its nodegroup rows in `.nodegroups`; the module gets the manager there.
    """

    def __init__(self, fake):
        self._fake = fake
        self.clusters = fake.clusters
        self.cluster_templates = fake.cluster_templates
        self.nodegroups = fake.nodegroups_mgr
        self.certificates = fake.certificates
        self.http_client = fake.http_client


class Ref(object):
    def __init__(self, id, name, **extra):
        self.id = id
        self.name = name
        for k, v in extra.items():
            setattr(self, k, v)


class FakeService(object):
    """conn.compute / conn.image / conn.network with find_* and listings."""

    def __init__(self, **tables):
        self.tables = tables
        self.calls = []

    def _find(self, table, value, **query):
        self.calls.append(('find', table, value))
        rows = self.tables.get(table, [])
        hits = [r for r in rows if r.id == value] or [r for r in rows if r.name == value]
        if len(hits) > 1:
            from openstack import exceptions as sdk_exc
            raise sdk_exc.DuplicateResource('More than one %s exists with the name %s' % (table, value))
        return hits[0] if hits else None

    def find_flavor(self, value, ignore_missing=True):
        return self._find('flavors', value)

    def flavors(self):
        return list(self.tables.get('flavors', []))

    def find_keypair(self, value, ignore_missing=True):
        return self._find('keypairs', value)

    def keypairs(self):
        return list(self.tables.get('keypairs', []))

    def find_image(self, value, ignore_missing=True):
        return self._find('images', value)

    def images(self):
        return list(self.tables.get('images', []))

    def find_network(self, value, ignore_missing=True):
        return self._find('networks', value)

    def networks(self):
        return list(self.tables.get('networks', []))

    def find_subnet(self, value, ignore_missing=True, **query):
        return self._find('subnets', value)

    def subnets(self, **query):
        return list(self.tables.get('subnets', []))


def default_conn():
    compute = FakeService(
        flavors=[Ref('f-small', 'm1.small'), Ref('f-large', 'm1.large'), Ref('f-gpu', 'bm.gpu')],
        keypairs=[Ref('ops', 'ops'), Ref('other', 'other')])
    image = FakeService(images=[Ref('img-1', 'fedora-coreos-40', os_distro='fedora-coreos'),
                                Ref('img-2', 'ubuntu-24', os_distro='ubuntu'),
                                Ref('img-3', 'fedora-coreos-41', os_distro='fedora-coreos'),
                                Ref('img-raw', 'raw-disk', os_distro=None, properties={})])
    network = FakeService(networks=[Ref('net-1', 'hpc-net'), Ref('ext-1', 'public')],
                          subnets=[Ref('sub-1', 'hpc-subnet')])
    return types.SimpleNamespace(compute=compute, image=image, network=network, session=None, config=None)


@pytest.fixture
def cloud(monkeypatch):
    """(fake magnum, fake conn, clock) wired into CoeOpenStackModule."""
    fake = FakeMagnum()
    conn = default_conn()
    clock = FakeClock()
    view = MagnumView(fake)
    monkeypatch.setattr(OpenStackModule, 'openstack_cloud_from_module', lambda self: (None, conn))
    monkeypatch.setattr(os_utils.CoeOpenStackModule, 'magnum', property(lambda self: view))
    monkeypatch.setattr(os_utils.CoeOpenStackModule, 'magnum_server_versions',
                        lambda self: ((1, 1), fake.max_version))
    monkeypatch.setattr(os_utils, 'time', clock)
    monkeypatch.setattr(retries, 'time', clock)
    monkeypatch.setattr(waiting, 'time', clock)
    fake.conn = conn
    fake.clock = clock
    return fake


def run_module(main, args, check=False, diff=False):
    """Run a module's main(); returns the exit result (with the warnings it gave) or raises Fail."""
    args = dict(args)
    args.setdefault('cloud', 'test')
    args['_ansible_check_mode'] = check
    args['_ansible_diff'] = diff
    warnings = []
    warn = mock.patch.object(basic.AnsibleModule, 'warn', lambda self, msg, *a, **k: warnings.append(msg))
    ended = fakes.run_module(main, args, patches=[warn])
    ended.result['warnings'] = warnings
    if ended.failed:
        ended.result['failed'] = True
        raise Fail(ended.result)
    ended.result.setdefault('changed', False)
    return ended.result


def run_failing(main, args, check=False, diff=False):
    with pytest.raises(Fail) as err:
        run_module(main, args, check=check, diff=diff)
    return err.value.result


class FakeCA(object):
    """A cluster CA that signs CSRs as Magnum does (for the kubeconfig tests)."""

    def __init__(self, days=1825, name='hpc-ca'):
        import datetime
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        self._x509, self._hashes, self._dt = x509, hashes, datetime
        self.days = days
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode('ascii')
        self._serialization = serialization
        self.signed = []

    def sign(self, csr_pem):
        x509, dt = self._x509, self._dt
        csr = x509.load_pem_x509_csr(csr_pem.encode('ascii'))
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.cert.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=self.days))
                .sign(self.key, self._hashes.SHA256()))
        self.signed.append(csr.subject)
        return cert.public_bytes(self._serialization.Encoding.PEM).decode('ascii')
