# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KMM Module building and planning for hpcops.coe.kernel_module.

The plan answers, before anything is applied, which nodes the Module selects,
which kernel each runs and which image (if any) KMM would load there, with
KMM's rules: the first kernel mapping that matches wins, a literal must equal
the kernel, a regexp must match somewhere in it, and ${KERNEL_FULL_VERSION}
in an image is replaced by the kernel.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re

from ansible_collections.hpcops.coe.plugins.module_utils.kube import selector_matches

KMM_API_VERSION = 'kmm.sigs.x-k8s.io/v1beta1'
KMM_LABEL_PREFIX = 'kmm.node.kubernetes.io/'
KERNEL_VARIABLE = '${KERNEL_FULL_VERSION}'


def ready_label(namespace, name):
    return '%s%s.%s.ready' % (KMM_LABEL_PREFIX, namespace, name)


def device_plugin_label(namespace, name):
    return '%s%s.%s.device-plugin-ready' % (KMM_LABEL_PREFIX, namespace, name)


def validate_mappings(mappings, default_image):
    problems = []
    if not mappings:
        problems.append('kernel_mappings: at least one mapping is required (a literal kernel version or a regexp, '
                        'with the image built for it)')
    for i, mapping in enumerate(mappings or []):
        where = 'kernel_mappings[%d]' % i
        literal, regexp = mapping.get('literal'), mapping.get('regexp')
        if bool(literal) == bool(regexp):
            problems.append('%s: give exactly one of literal (an exact kernel version such as '
                            '5.14.0-427.13.1.el9_4.x86_64) and regexp (such as ^.+\\.el9_4\\.x86_64$)' % where)
        if regexp:
            try:
                re.compile(regexp)
            except re.error as exc:
                problems.append('%s.regexp: %r is not a valid regular expression: %s' % (where, regexp, exc))
        image = mapping.get('container_image') or default_image
        if not image:
            problems.append('%s: container_image is required (or set the module-wide container_image)' % where)
        elif regexp and KERNEL_VARIABLE not in image and len(mappings) == 1:
            # one image for every kernel only works for modules built for all of them
            pass
    return problems


def image_for(mappings, kernel, default_image=None):
    """The image KMM would load for `kernel`, or None when no mapping matches."""
    for mapping in mappings or []:
        if mapping.get('literal'):
            hit = mapping['literal'] == kernel
        else:
            hit = re.search(mapping.get('regexp') or '(?!)', kernel) is not None
        if hit:
            image = mapping.get('container_image') or default_image or ''
            return image.replace(KERNEL_VARIABLE, kernel)
    return None


def plan(nodes, selector, mappings, default_image=None):
    """[{name, kernel, image}] for every node the selector matches (image None: no mapping)."""
    out = []
    for node in nodes:
        meta = node.get('metadata') or {}
        if not selector_matches(meta.get('labels'), selector):
            continue
        kernel = ((node.get('status') or {}).get('nodeInfo') or {}).get('kernelVersion') or ''
        out.append({'name': meta.get('name'), 'kernel': kernel, 'image': image_for(mappings, kernel, default_image)})
    return sorted(out, key=lambda n: n['name'])


def missing_mapping_message(namespace, name, selector, entries, mappings):
    kernels = {}
    for entry in entries:
        kernels.setdefault(entry['kernel'], []).append(entry['name'])
    have = ', '.join('literal %s' % m['literal'] if m.get('literal') else 'regexp %s' % m.get('regexp')
                     for m in mappings) or 'none'
    detail = '; '.join('kernel %s on %s' % (k, ', '.join(sorted(v))) for k, v in sorted(kernels.items()))
    return ('Module %s/%s: %d node(s) matching the selector %s have no kernel mapping: %s. KMM would skip them '
            '(nodesMatchingSelectorNumber > desiredNumber). Add a kernel_mappings entry (and an image built for that '
            'kernel) whose literal or regexp matches, or narrow the selector; mappings now: %s.'
            % (namespace, name, len(entries), json.dumps(selector, sort_keys=True), detail, have))


def pull_secret(namespace, spec):
    """A kubernetes.io/dockerconfigjson Secret from the pull_secret option, or None to reference one."""
    if spec.get('docker_config_json'):
        config = spec['docker_config_json']
        if not isinstance(config, str):
            config = json.dumps(config, sort_keys=True)
    elif spec.get('registry') and spec.get('username') is not None and spec.get('password') is not None:
        auth = base64.b64encode(('%s:%s' % (spec['username'], spec['password'])).encode()).decode()
        entry = {'username': spec['username'], 'password': spec['password'], 'auth': auth}
        config = json.dumps({'auths': {spec['registry']: entry}}, sort_keys=True)
    else:
        return None
    return {
        'apiVersion': 'v1', 'kind': 'Secret', 'type': 'kubernetes.io/dockerconfigjson',
        'metadata': {'name': spec['name'], 'namespace': namespace},
        'data': {'.dockerconfigjson': base64.b64encode(config.encode()).decode()},
    }


def build_module(params):
    """The KMM Module object for the module's parameters."""
    mappings = []
    for mapping in params.get('kernel_mappings') or []:
        entry = {}
        if mapping.get('literal'):
            entry['literal'] = mapping['literal']
        else:
            entry['regexp'] = mapping['regexp']
        entry['containerImage'] = mapping.get('container_image') or params.get('container_image')
        mappings.append(entry)
    spec = {'selector': dict(params['selector'])}
    if params.get('tolerations'):
        spec['tolerations'] = params['tolerations']
    if params.get('pull_secret'):
        spec['imageRepoSecret'] = {'name': params['pull_secret']['name']}
    if mappings:
        modprobe = {'moduleName': params['module_name']}
        if params.get('parameters'):
            modprobe['parameters'] = list(params['parameters'])
        if params.get('firmware_path'):
            modprobe['firmwarePath'] = params['firmware_path']
        if params.get('dir_name'):
            modprobe['dirName'] = params['dir_name']
        if params.get('modules_loading_order'):
            modprobe['modulesLoadingOrder'] = list(params['modules_loading_order'])
        container = {'modprobe': modprobe, 'kernelMappings': mappings}
        if params.get('image_pull_policy'):
            container['imagePullPolicy'] = params['image_pull_policy']
        loader = {'container': container}
        if params.get('service_account'):
            loader['serviceAccountName'] = params['service_account']
        spec['moduleLoader'] = loader
    dp = params.get('device_plugin')
    if dp:
        container = {'image': dp['image']}
        if dp.get('args'):
            container['args'] = list(dp['args'])
        if dp.get('env'):
            container['env'] = [{'name': k, 'value': str(v)} for k, v in sorted(dp['env'].items())]
        plugin = {'container': container}
        if dp.get('service_account'):
            plugin['serviceAccountName'] = dp['service_account']
        spec['devicePlugin'] = plugin
    return {'apiVersion': KMM_API_VERSION, 'kind': 'Module',
            'metadata': {'name': params['name'], 'namespace': params['namespace']}, 'spec': spec}


def status_reached(status, mapped, matching, device_plugin):
    """Whether KMM's status says the module is loaded everywhere it should be."""
    loader = (status or {}).get('moduleLoader') or {}
    if mapped is not None and (loader.get('nodesMatchingSelectorNumber') != matching or
                               loader.get('desiredNumber') != mapped or loader.get('availableNumber') != mapped):
        return False
    if device_plugin:
        dp = (status or {}).get('devicePlugin') or {}
        if not dp.get('desiredNumber') or dp.get('availableNumber') != dp.get('desiredNumber'):
            return False
    return True
