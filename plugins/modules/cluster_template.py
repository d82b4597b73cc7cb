#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: cluster_template
short_description: Manage OpenStack Magnum cluster templates
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Creates, updates and deletes a Magnum cluster template.
  - Image, flavors, networks, subnet and keypair may be given by name or ID. They are checked
    before anything is sent, and an unknown one fails with the list of valid names.
  - Changes Magnum can apply to an existing template are sent as one PATCH. A template that
    clusters use accepts only changes to I(public) and I(hidden); other changes then fail
    before anything is sent, and the message names the clusters.
  - Some changes need a new template rather than a PATCH. These are I(coe), I(server_type),
    and an image with a different C(os_distro). They select another Magnum driver, and Magnum
    would keep the old one. The module reports these and changes nothing.
  - Labels are sent as strings (booleans as C(true)/C(false)), so reruns compare equal.
  - Template names are not unique in Magnum. When two runs create the same name at the same
    moment, the later template is deleted again and both runs use the older one.
options:
  name:
    description:
      - Name of the template, or the UUID of an existing template.
    required: true
    type: str
  state:
    description:
      - C(present) creates or updates the template, C(absent) deletes it.
      - Deleting a template that clusters still use fails, and the message names the clusters.
    choices: [present, absent]
    default: present
    type: str
  coe:
    description:
      - Container orchestration engine. C(kubernetes) when a template is created without it.
    choices: [kubernetes]
    type: str
  image:
    description:
      - Glance image (name or ID) of the nodes. Required to create a template.
      - The image must have the C(os_distro) property; Magnum picks the driver from it.
    aliases: [image_id]
    type: str
  keypair:
    description:
      - Nova keypair name for the nodes.
    aliases: [keypair_id]
    type: str
  flavor:
    description:
      - Nova flavor (name or ID) of the worker nodes.
    aliases: [flavor_id]
    type: str
  master_flavor:
    description:
      - Nova flavor (name or ID) of the control-plane nodes.
    aliases: [master_flavor_id]
    type: str
  external_network:
    description:
      - Neutron external network (name or ID) for floating IPs and load balancers.
      - Required when I(floating_ip_enabled=true) on create.
    aliases: [external_network_id]
    type: str
  fixed_network:
    description:
      - Neutron network (name or ID) of the nodes. Magnum creates a private network when unset.
    type: str
  fixed_subnet:
    description:
      - Neutron subnet (name or ID) in I(fixed_network).
    type: str
  dns_nameserver:
    description:
      - DNS server of the private network Magnum creates.
    type: str
  docker_volume_size:
    description:
      - Size in GB of each node's container storage volume. Must be 1 or more.
    type: int
  docker_storage_driver:
    description:
      - Container storage driver.
    type: str
  network_driver:
    description:
      - Container network driver, for example C(calico) or C(flannel).
    type: str
  volume_driver:
    description:
      - Container volume driver, for example C(cinder).
    type: str
  http_proxy:
    description:
      - HTTP proxy for the nodes.
    type: str
  https_proxy:
    description:
      - HTTPS proxy for the nodes.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts the nodes reach without proxy.
    type: str
  labels:
    description:
      - Magnum labels. Values are sent as strings, booleans as C(true)/C(false).
      - The template's labels become exactly these.
    type: dict
  tls_disabled:
    description:
      - Disable TLS on the Kubernetes API.
    type: bool
  public:
    description:
      - Share the template with all projects (admin only by default policy).
    type: bool
  hidden:
    description:
      - Hide the template from listings (admin only by default policy).
    type: bool
  registry_enabled:
    description:
      - Enable the docker registry in the cluster.
    type: bool
  insecure_registry:
    description:
      - URL of an insecure registry for the nodes.
    type: str
  server_type:
    description:
      - C(vm) for virtual machines, C(bm) for bare metal (Ironic).
    choices: [vm, bm]
    type: str
  floating_ip_enabled:
    description:
      - Whether nodes get floating IPs.
    type: bool
  master_lb_enabled:
    description:
      - Whether the control plane sits behind a load balancer.
    type: bool
  apiserver_port:
    description:
      - Port of the Kubernetes API. Must be 1 to 65535.
    type: int
notes:
  - The options C(wait) and C(timeout) are accepted for uniformity; template operations are synchronous.
requirements:
  - python-magnumclient >= 4.0.0
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The template before and after.
  platform:
    platforms: all
'''

EXAMPLES = r'''
- name: Bare-metal Kubernetes template for a Cluster API driver
  hpcops.coe.cluster_template:
    cloud: mycloud
    name: k8s-baremetal-v1.30
    # Current Magnum drivers (Cluster API) boot Ubuntu images whose os_distro is ubuntu
    # and take server_type vm: the nodes are bare metal because the flavors are Ironic-backed.
    image: ubuntu-jammy-kube-v1.30.4
    server_type: vm
    flavor: bm.compute
    master_flavor: bm.compute
    external_network: public
    fixed_network: hpc-net
    fixed_subnet: hpc-subnet
    keypair: ops
    network_driver: calico
    floating_ip_enabled: false
    master_lb_enabled: true
    labels:
      kube_tag: v1.30.4
      auto_healing_enabled: false
      boot_volume_size: 50

- name: Publish it
  hpcops.coe.cluster_template:
    cloud: mycloud
    name: k8s-baremetal-v1.30
    public: true

- name: Remove it
  hpcops.coe.cluster_template:
    cloud: mycloud
    name: k8s-baremetal-v1.30
    state: absent
'''

RETURN = r'''
cluster_template:
  description: The template after the change (before it, in check mode).
  returned: when I(state=present)
  type: dict
  contains:
    id:
      description: UUID of the template.
      type: str
    uuid:
      description: UUID of the template.
      type: str
    name:
      description: Name.
      type: str
    coe:
      description: Container orchestration engine.
      type: str
    image_id:
      description: Image as Magnum stores it.
      type: str
    cluster_distro:
      description: The image's C(os_distro), which selects the driver.
      type: str
    server_type:
      description: C(vm) or C(bm).
      type: str
    labels:
      description: Labels.
      type: dict
    tls_disabled:
      description: Whether TLS is off.
      type: bool
    public:
      description: Whether shared with all projects.
      type: bool
    hidden:
      description: Whether hidden from listings.
      type: bool
patch:
  description: The JSON patch sent (or that would be sent in check mode).
  returned: when an existing template is updated
  type: list
  elements: dict
  sample: [{op: replace, path: /public, value: true}]
needs_recreation:
  description: Fields that differ but cannot be patched; the module fails when there are any.
  returned: on failure because of them
  type: list
  elements: str
used_by:
  description: UUIDs of clusters that use the template.
  returned: when they stop an update or a delete
  type: list
  elements: str
'''

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils.openstack import (
    RAISE,
    CoeOpenStackModule,
    format_error,
    http_status,
    is_transient,
)

# Options that are plain values, compared and sent as they are.
PLAIN = ('coe', 'dns_nameserver', 'docker_volume_size', 'docker_storage_driver', 'network_driver',
         'volume_driver', 'http_proxy', 'https_proxy', 'no_proxy', 'tls_disabled', 'public', 'hidden',
         'registry_enabled', 'insecure_registry', 'server_type', 'floating_ip_enabled',
         'master_lb_enabled', 'apiserver_port')

# option -> (Magnum field, resolver method, field sent: 'id' or 'name')
REFERENCES = (
    ('image', 'image_id', 'resolve_image', 'id'),
    ('keypair', 'keypair_id', 'resolve_keypair', 'name'),
    ('flavor', 'flavor_id', 'resolve_flavor', 'id'),
    ('master_flavor', 'master_flavor_id', 'resolve_flavor', 'id'),
    ('external_network', 'external_network_id', 'resolve_network', 'id'),
    ('fixed_network', 'fixed_network', 'resolve_network', 'id'),
    ('fixed_subnet', 'fixed_subnet', 'resolve_subnet', 'id'),
)

# A different value selects another driver; Magnum would patch the field and keep the old driver.
RECREATE = ('coe', 'server_type')

VIEW = PLAIN + ('name', 'image_id', 'keypair_id', 'flavor_id', 'master_flavor_id',
                'external_network_id', 'fixed_network', 'fixed_subnet', 'labels', 'cluster_distro')


class ClusterTemplateModule(CoeOpenStackModule):
    argument_spec = dict(
        name=dict(required=True),
        state=dict(default='present', choices=['present', 'absent']),
        coe=dict(choices=['kubernetes']),
        image=dict(aliases=['image_id']),
        keypair=dict(aliases=['keypair_id'], no_log=False),
        flavor=dict(aliases=['flavor_id']),
        master_flavor=dict(aliases=['master_flavor_id']),
        external_network=dict(aliases=['external_network_id']),
        fixed_network=dict(),
        fixed_subnet=dict(),
        dns_nameserver=dict(),
        docker_volume_size=dict(type='int'),
        docker_storage_driver=dict(),
        network_driver=dict(),
        volume_driver=dict(),
        http_proxy=dict(),
        https_proxy=dict(),
        no_proxy=dict(),
        labels=dict(type='dict'),
        tls_disabled=dict(type='bool'),
        public=dict(type='bool'),
        hidden=dict(type='bool'),
        registry_enabled=dict(type='bool'),
        insecure_registry=dict(),
        server_type=dict(choices=['vm', 'bm']),
        floating_ip_enabled=dict(type='bool'),
        master_lb_enabled=dict(type='bool'),
        apiserver_port=dict(type='int'),
    )
    module_kwargs = dict(supports_check_mode=True)

    def validate_input(self):
        p = self.params
        if p['docker_volume_size'] is not None and p['docker_volume_size'] < 1:
            raise mg.MagnumInputError('docker_volume_size must be 1 (GB) or more, got %d' % p['docker_volume_size'])
        if p['apiserver_port'] is not None and not 0 < p['apiserver_port'] < 65536:
            raise mg.MagnumInputError('apiserver_port must be 1 to 65535, got %d' % p['apiserver_port'])
        self.labels = mg.normalize_labels(p['labels'])

    def run(self):
        self.validate_input()
        name = self.params['name']
        template = self.find_template(name, option='name', required=False)
        if self.params['state'] == 'absent':
            return self.absent(template)
        if template is None:
            return self.create()
        return self.update(template)

    @staticmethod
    def view(template):
        if template is None:
            return {}
        return dict((k, mg.field(template, k)) for k in VIEW)

    def summary(self, template):
        data = mg.to_dict(template) or {}
        data.pop('links', None)
        data['id'] = data.get('uuid')
        return data

    def used_by(self, template):
        uuid = mg.object_id(template)
        return [c for c in self.list_clusters() if mg.field(c, 'cluster_template_id') == uuid]

    # ---- absent

    def absent(self, template):
        if template is None:
            return dict(changed=False)
        users = self.used_by(template)
        if users:
            self.fail_json(msg="Cannot delete cluster template '%s' (%s): clusters use it: %s. Delete them or upgrade "
                               "them to another template first." % (
                                   mg.field(template, 'name'), mg.object_id(template),
                                   ', '.join("%s (%s)" % (mg.field(c, 'name'), mg.object_id(c)) for c in users)),
                           used_by=[mg.object_id(c) for c in users])
        result = dict(changed=True)
        if self.ansible._diff:
            result['diff'] = dict(before=self.view(template), after={})
        if self.check_mode:
            return result
        uuid = mg.object_id(template)
        self.magnum_call('delete', "cluster template '%s' (%s)" % (mg.field(template, 'name'), uuid),
                         lambda c: c.cluster_templates.delete(uuid),
                         on_error=lambda e: None if http_status(e) == 404 else RAISE)
        return result

    # ---- desired state

    def resolve_all(self):
        refs = {}
        for option, key, resolver, _sent in REFERENCES:
            value = self.params[option]
            if value is None:
                continue
            kwargs = {}
            if option == 'fixed_subnet' and 'fixed_network' in refs:
                kwargs['network_id'] = refs['fixed_network']['id']
            refs[option] = getattr(self, resolver)(value, option, **kwargs)
        image = refs.get('image')
        if image is not None:
            distro = self.os_distro(image['object'])
            if not distro:
                raise mg.MagnumInputError(
                    "image '%s' (%s) has no os_distro property; Magnum needs it to choose a driver "
                    "(set it, e.g. 'openstack image set --property os_distro=fedora-coreos %s')"
                    % (image['given'], image['id'], image['id']))
            image['os_distro'] = distro
        return refs

    @staticmethod
    def os_distro(image):
        value = getattr(image, 'os_distro', None)
        if value:
            return value
        props = getattr(image, 'properties', None) or {}
        return props.get('os_distro') if isinstance(props, dict) else None

    def wanted_value(self, option, sent, refs):
        ref = refs[option]
        return ref['name'] if sent == 'name' else ref['id']

    # ---- create

    def create(self):
        p = self.params
        if not p['image']:
            raise mg.MagnumInputError("cluster template '%s' does not exist and image is needed to create it"
                                      % p['name'])
        if p['floating_ip_enabled'] and not p['external_network']:
            raise mg.MagnumInputError('floating_ip_enabled is true but external_network is not set: Magnum '
                                      'allocates floating IPs from the external network')
        refs = self.resolve_all()
        body = dict(name=p['name'], coe=p['coe'] or 'kubernetes')
        for key in PLAIN:
            if p[key] is not None:
                body[key] = p[key]
        for option, key, _resolver, sent in REFERENCES:
            if option in refs:
                body[key] = self.wanted_value(option, sent, refs)
        if self.labels is not None:
            body['labels'] = self.labels
        result = dict(changed=True)
        if self.ansible._diff:
            after = dict(body)
            after['cluster_distro'] = refs['image']['os_distro']
            result['diff'] = dict(before={}, after=after)
        if self.check_mode:
            result['cluster_template'] = dict(body, cluster_distro=refs['image']['os_distro'])
            return result

        lost = []

        def on_error(exc):
            # A 5xx or a dropped connection may hide a template that was created:
            # adopt it if it is ours, remove it otherwise, never leave a stray one.
            status = http_status(exc)
            if (status is not None and status < 500) or not is_transient(exc, True):
                return RAISE
            lost.append(exc)
            return None

        created = self.magnum_call('create', "cluster template '%s'" % p['name'],
                                   lambda c: self.create_template(body), idempotent=False,
                                   on_error=on_error)
        if created is None:
            created = self.recover_create(body, lost[0])

        # Two runs may have listed "no such template" at the same time (Magnum names are
        # not unique): the oldest same-named template stays and this run's duplicate goes.
        keeper = mg.keeper_of(self.list_templates(), p['name'])
        uuid = mg.object_id(created)
        if keeper is not None and mg.object_id(keeper) != uuid:
            self.warn("Another run created cluster template '%s' (%s) at the same time; this run's duplicate %s "
                      "was deleted and the existing template is used." % (p['name'], mg.object_id(keeper), uuid))
            self.magnum_call('delete', "duplicate cluster template '%s' (%s)" % (p['name'], uuid),
                             lambda c: c.cluster_templates.delete(uuid),
                             on_error=lambda e: None if http_status(e) == 404 else RAISE)
            return self.update(keeper)
        result['cluster_template'] = self.summary(created)
        return result

    def recover_create(self, body, exc):
        msg = format_error(exc, 'create', "cluster template '%s'" % body['name'])
        found = [t for t in self.list_templates() if mg.field(t, 'name') == body['name']]
        if not found:
            self.fail_json(msg=msg + '; no template was left behind.')
        for tpl in found:
            if all(mg.field(tpl, k) == v for k, v in body.items()):
                self.warn('%s, but the template was created; using it.' % msg)
                return tpl
        for tpl in found:
            uuid = mg.object_id(tpl)
            self.magnum_call('delete', "partly created cluster template '%s' (%s)" % (body['name'], uuid),
                             lambda c: c.cluster_templates.delete(uuid),
                             on_error=lambda e: None if http_status(e) == 404 else RAISE)
        self.fail_json(msg=msg + '; the partly created template was deleted.')

    # ---- update

    def update(self, template):
        p = self.params
        refs = self.resolve_all()
        patch = []
        recreate = []
        for key in PLAIN:
            want = p[key]
            if want is None or mg.field(template, key) == want:
                continue
            if key in RECREATE:
                recreate.append('%s (is %r, wanted %r)' % (key, mg.field(template, key), want))
                continue
            patch.append({'op': 'replace', 'path': '/' + key, 'value': want})
        for option, key, _resolver, sent in REFERENCES:
            if option not in refs:
                continue
            current = mg.field(template, key)
            if current in self.spellings(refs[option]):
                continue
            if option == 'image' and refs['image']['os_distro'] != mg.field(template, 'cluster_distro'):
                recreate.append("image (os_distro %r of '%s' differs from the template's %r)" % (
                    refs['image']['os_distro'], refs['image']['given'], mg.field(template, 'cluster_distro')))
                continue
            patch.append({'op': 'replace', 'path': '/' + key, 'value': self.wanted_value(option, sent, refs)})
        if self.labels is not None and mg.normalize_labels(mg.field(template, 'labels') or {}) != self.labels:
            patch.append({'op': 'replace', 'path': '/labels', 'value': self.labels})

        name = mg.field(template, 'name')
        uuid = mg.object_id(template)
        if recreate:
            self.fail_json(msg="Cluster template '%s' (%s) differs in what a PATCH cannot change: %s. They select "
                               "another Magnum driver. Nothing was changed; create a new template under another "
                               "name (and upgrade clusters to it with hpcops.coe.cluster)." % (
                                   name, uuid, '; '.join(recreate)),
                           needs_recreation=[r.split(' ')[0] for r in recreate],
                           cluster_template=self.summary(template))
        if not patch:
            return dict(changed=False, cluster_template=self.summary(template))

        touched = set(op['path'][1:] for op in patch)
        if not touched <= mg.TEMPLATE_FIELDS_UPDATABLE_IN_USE:
            users = self.used_by(template)
            if users:
                self.fail_json(
                    msg="Cannot update cluster template '%s' (%s): clusters use it (%s), and Magnum then only "
                        "changes public and hidden. Wanted changes: %s. Create a new template and upgrade the "
                        "clusters to it." % (
                            name, uuid, ', '.join("%s (%s)" % (mg.field(c, 'name'), mg.object_id(c)) for c in users),
                            ', '.join(sorted(touched - mg.TEMPLATE_FIELDS_UPDATABLE_IN_USE))),
                    used_by=[mg.object_id(c) for c in users], patch=patch)

        result = dict(changed=True, patch=patch)
        before = self.view(template)
        if self.ansible._diff:
            after = dict(before)
            for op in patch:
                after[op['path'][1:]] = op['value']
            result['diff'] = dict(before=before, after=after)
        if self.check_mode:
            result['cluster_template'] = self.summary(template)
            return result
        updated = self.magnum_call('update', "cluster template '%s' (%s)" % (name, uuid),
                                   lambda c: c.cluster_templates.update(uuid, patch))
        result['cluster_template'] = self.summary(updated or self.get_template(uuid))
        return result


def main():
    module = ClusterTemplateModule()
    module()


if __name__ == '__main__':
    main()
