#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: cluster_kubeconfig
short_description: Write the kubeconfig of an OpenStack Magnum cluster
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Builds the kubeconfig of a Magnum Kubernetes cluster the way C(openstack coe cluster config) does.
    It reads the cluster's CA from Magnum, makes a new RSA-2048 key and a CSR with
    C(CN=admin, O=system:masters), has Magnum sign it, and writes the API address, the CA
    and the signed client certificate.
  - The file is written atomically with mode C(0600). The kubeconfig holds a private key and is
    returned only when I(return_content=true).
  - Idempotent. No new certificate is requested while the file at I(dest) still points at the
    cluster's API address, holds the cluster's current CA, and has a client certificate signed
    by that CA that does not expire within I(renew_before_days). After a CA rotation or expiry,
    or with I(force), a new certificate is issued.
  - TLS entries are written only when the template has TLS enabled and the API address is
    C(https://). Otherwise the kubeconfig holds only the server, like the Magnum CLI's.
options:
  cluster:
    description:
      - Name or UUID of the cluster.
    required: true
    type: str
  dest:
    description:
      - Path of the kubeconfig file. Missing parent directories are created with mode C(0700).
      - Required unless I(return_content=true).
    type: path
  return_content:
    description:
      - Return the kubeconfig (including the client key) as C(kubeconfig). Use C(no_log) on the task.
    type: bool
    default: false
  force:
    description:
      - Request a new client certificate even if the existing file is still good.
    type: bool
    default: false
  renew_before_days:
    description:
      - Request a new certificate when the one in I(dest) expires within this many days.
    type: int
    default: 30
  context_name:
    description:
      - Name of the kubeconfig context. Default C(default) with TLS and the cluster name without,
        as the Magnum CLI writes it.
    type: str
  timeout:
    description:
      - How long to wait, in seconds, for a cluster that has no API address yet (still being created).
    type: int
    default: 3600
  wait:
    description:
      - Wait for a cluster without an API address to get one. Without waiting the module fails then.
    type: bool
    default: true
notes:
  - Only Kubernetes clusters (template C(coe=kubernetes)) are supported.
requirements:
  - python-magnumclient >= 4.0.0
  - cryptography
  - PyYAML
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the file would change but requests no certificate.
  diff_mode:
    support: none
  platform:
    platforms: all
'''

EXAMPLES = r'''
- name: Kubeconfig for the cluster
  hpcops.coe.cluster_kubeconfig:
    cloud: mycloud
    cluster: hpc-k8s
    dest: "{{ lookup('env', 'HOME') }}/.kube/hpc-k8s.yaml"

- name: Use it with kubernetes.core
  kubernetes.core.k8s_info:
    kubeconfig: "{{ lookup('env', 'HOME') }}/.kube/hpc-k8s.yaml"
    kind: Node

- name: Keep the kubeconfig in memory only
  hpcops.coe.cluster_kubeconfig:
    cloud: mycloud
    cluster: hpc-k8s
    return_content: true
  register: kc
  no_log: true
'''

RETURN = r'''
dest:
  description: Path of the kubeconfig.
  returned: when I(dest) is set
  type: str
api_address:
  description: The Kubernetes API address written as server.
  returned: always
  type: str
  sample: https://10.0.0.5:6443
tls:
  description: Whether the kubeconfig holds TLS material.
  returned: always
  type: bool
certificate_issued:
  description: Whether a new client certificate was requested from Magnum in this run.
  returned: always
  type: bool
certificate_expires:
  description: Expiry (ISO 8601, UTC) of the client certificate in the kubeconfig.
  returned: when I(tls) is true and the certificate is known
  type: str
reason:
  description: Why the file was (or would be) rewritten, or why it was left alone.
  returned: always
  type: str
context:
  description: Name of the kubeconfig's current context.
  returned: always
  type: str
kubeconfig:
  description: The kubeconfig text, including the client key.
  returned: when I(return_content=true) (not in check mode when a certificate would be requested)
  type: str
'''

import os
import tempfile
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils import magnum_certs as certs
from ansible_collections.hpcops.coe.plugins.module_utils.openstack import CoeOpenStackModule

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()


class ClusterKubeconfigModule(CoeOpenStackModule):
    argument_spec = dict(
        cluster=dict(required=True),
        dest=dict(type='path'),
        return_content=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        renew_before_days=dict(type='int', default=30),
        context_name=dict(),
        timeout=dict(type='int', default=3600),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        if not certs.HAS_CRYPTOGRAPHY:
            self.fail_json(msg=missing_required_lib('cryptography'), exception=certs.CRYPTOGRAPHY_IMPORT_ERROR)
        if not HAS_YAML:
            self.fail_json(msg=missing_required_lib('PyYAML'), exception=YAML_IMPORT_ERROR)
        p = self.params
        if not p['dest'] and not p['return_content']:
            raise mg.MagnumInputError('nothing to do: set dest (the kubeconfig file to write), '
                                      'return_content=true, or both')
        if p['renew_before_days'] < 0:
            raise mg.MagnumInputError('renew_before_days must be 0 or more, got %d' % p['renew_before_days'])
        if p['dest'] and os.path.isdir(p['dest']):
            raise mg.MagnumInputError('dest %s is a directory; give the path of the kubeconfig file' % p['dest'])

        cluster = self.find_cluster(p['cluster'], option='cluster')
        cluster = self.ready(cluster)
        name = mg.field(cluster, 'name')
        uuid = mg.object_id(cluster)
        server = mg.field(cluster, 'api_address')
        template = self.get_template(mg.field(cluster, 'cluster_template_id'), missing_ok=False)
        coe = mg.field(template, 'coe')
        if coe and coe != 'kubernetes':
            raise mg.MagnumInputError("cluster '%s' runs %s; only Kubernetes clusters have a kubeconfig" % (name, coe))
        tls = not mg.field(template, 'tls_disabled') and str(server).startswith('https://')

        ca_pem = None
        if tls:
            ca = self.magnum_call('read the CA of', "cluster '%s'" % name, lambda c: c.certificates.get(uuid))
            ca_pem = mg.field(ca, 'pem')

        existing, existing_text = self.read_existing()
        cert_pem = key_pem = None
        reason = None
        if tls:
            old_ca, old_cert, old_key = certs.existing_credentials(existing, name)
            if p['force']:
                reason = 'force is set'
            elif existing is None:
                reason = 'no kubeconfig at dest' if p['dest'] else 'no dest to reuse a certificate from'
            elif not old_cert or not old_key:
                reason = 'the kubeconfig at dest has no client certificate for this cluster'
            else:
                reason = certs.credentials_problem(old_cert, old_key, ca_pem, p['renew_before_days'])
                if reason is None:
                    cert_pem, key_pem = old_cert, old_key
        issue = tls and cert_pem is None

        result = dict(changed=False, api_address=server, tls=tls, certificate_issued=False)
        if p['dest']:
            result['dest'] = p['dest']

        if issue and self.check_mode:
            result.update(changed=bool(p['dest']), reason=reason,
                          context=self.context_for(name, tls))
            return result
        if issue:
            key_pem, csr = certs.new_key_and_csr()
            # Signing stores nothing in Magnum: a retry after a 5xx signs the same CSR again, harmlessly.
            signed = self.magnum_call('sign a client certificate for', "cluster '%s'" % name,
                                      lambda c: c.certificates.create(cluster_uuid=uuid, csr=csr), idempotent=True)
            cert_pem = mg.field(signed, 'pem')
            result['certificate_issued'] = True

        config = certs.build_kubeconfig(name, server, tls, ca_pem, cert_pem, key_pem, p['context_name'])
        text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
        result['context'] = config['current-context']
        if tls:
            result['certificate_expires'] = certs.cert_expiry(cert_pem)

        if p['dest']:
            same = existing == config
            if same and reason is None:
                reason = 'the kubeconfig at dest matches the cluster'
            elif reason is None:
                reason = 'the kubeconfig at dest differs from the cluster (server, CA or names)'
            mode_ok = existing_text is not None and (os.stat(p['dest']).st_mode & 0o777) == 0o600
            if not same:
                result['changed'] = True
                if not self.check_mode:
                    self.write(p['dest'], text)
            elif not mode_ok:
                result['changed'] = True
                reason += '; mode set to 0600'
                if not self.check_mode:
                    os.chmod(p['dest'], 0o600)
        result['reason'] = reason or 'no TLS: the kubeconfig holds only the server'
        if p['return_content']:
            result['kubeconfig'] = text
        return result

    def context_for(self, name, tls):
        return self.params['context_name'] or ('default' if tls else name)

    def ready(self, cluster):
        """The cluster once it has an API address (waiting for a cluster being created)."""
        if mg.field(cluster, 'api_address'):
            return cluster
        name = mg.field(cluster, 'name')
        status = mg.field(cluster, 'status')
        if not self.params['wait'] or not mg.is_busy(status):
            raise mg.MagnumInputError("cluster '%s' has no API address (status %s%s); it has no kubeconfig yet" % (
                name, status, ': %s' % mg.field(cluster, 'status_reason') if mg.field(cluster, 'status_reason') else ''))
        last, err = self.wait_until(
            "cluster '%s' API address" % name,
            fetch=lambda: self.get_cluster(mg.object_id(cluster)),
            is_done=lambda c: c is not None and bool(mg.field(c, 'api_address')),
            is_failed=lambda c: c is None or mg.status_family(mg.field(c, 'status')) == mg.FAILED
            or not mg.is_busy(mg.field(c, 'status')),
            status_of=lambda c: 'gone' if c is None else mg.field(c, 'status'))
        if err is not None:
            self.fail_json(msg="Cluster '%s' got no API address (%s): %s" % (
                name, mg.field(last, 'status') if last else 'deleted', mg.field(last, 'status_reason') or err),
                waited=self.waited())
        return last

    def read_existing(self):
        dest = self.params['dest']
        if not dest or not os.path.exists(dest):
            return None, None
        try:
            with open(dest) as f:
                text = f.read()
        except (IOError, OSError) as exc:
            self.fail_json(msg='Cannot read the existing kubeconfig %s: %s' % (dest, exc))
        try:
            return yaml.safe_load(text), text
        except yaml.YAMLError:
            return None, text

    def write(self, dest, text):
        parent = os.path.dirname(os.path.abspath(dest))
        try:
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o700)
            fd, tmp = tempfile.mkstemp(prefix='.kubeconfig-', dir=parent)
        except (IOError, OSError) as exc:
            self.fail_json(msg='Cannot write the kubeconfig to %s: %s' % (dest, exc))
        try:
            # mkstemp creates the file 0600, so the key is never readable by others.
            with os.fdopen(fd, 'w') as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, dest)
        except (IOError, OSError) as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            self.fail_json(msg='Cannot write the kubeconfig to %s: %s' % (dest, exc))


def main():
    module = ClusterKubeconfigModule()
    module()


if __name__ == '__main__':
    main()
