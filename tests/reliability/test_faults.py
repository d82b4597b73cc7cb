# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults: every module converges or fails with a clear message, a rerun converges,
and nothing is left behind.

Each scenario gets a fresh simulated cloud (or Kubernetes world), runs one play of
many module tasks under its faults (every task `ignore_errors`, so one failure
does not hide the next), lifts the faults the way the real condition would pass,
reruns the play, and counts through the APIs what remains: duplicate clusters,
templates and nodegroups, failed clusters, leaked or orphaned ports, orphaned
servers and stacks, interfaces attached twice, and Kubernetes objects nobody
asked for.

The scenarios are independent, so they run side by side (a module-scoped fixture
starts them all; the tests below each check one). Most of a scenario's time is
spent waiting on the simulators, not computing.
"""

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reliability_kit import (
    FIGURES,
    census,
    kube_writes,
    leftovers,
    play,
    run_playbook,
    unclear_reason,
)
from reliability_kit import KubeFaults
from testworld.kubernetes import components

CONVERGE, EITHER, FAIL = 'converge', 'either', 'fail'
TEMPLATE = {'name': 'rel-tpl', 'image': 'fedora-coreos-40', 'keypair': 'hpc-key', 'external_network': 'public',
            'flavor': 'm1.small', 'master_flavor': 'm1.large', 'network_driver': 'calico',
            'labels': {'hpcops_sim_driver': 'heat', 'kube_tag': 'v1.30.4'}}
# What a failure caused by an injected 5xx has to say.
SAYS_UNAVAILABLE = r'HTTP 50\d|unavailable|Internal ?Error|Timed out'


class Step(object):
    """One module task of a scenario and what is acceptable on the first run."""

    def __init__(self, name, module, args, expect=EITHER, says=None, rerun=None):
        self.name = name
        self.module = module
        self.args = args
        self.expect = expect
        self.says = says
        self.rerun = rerun      # other arguments for the rerun (e.g. a longer timeout), or None

    def task(self, rerun=False):
        args = dict(self.args)
        if rerun and self.rerun:
            args.update(self.rerun)
        fq = self.module if '.' in self.module else 'hpcops.coe.' + self.module
        return {'name': self.name, fq: args, 'ignore_errors': True}


class Outcome(object):
    def __init__(self, name):
        self.name = name
        self.first = None
        self.rerun = None
        self.left = None
        self.kube_left = None
        self.notes = {}
        self.error = None
        self.rules = []

    def problems(self, steps):
        """Every way this scenario broke the rules, as readable lines."""
        out = []
        if self.error is not None:
            return ['scenario crashed: %r' % (self.error,)]
        for step in steps:
            first = self.first.record(step.name)
            failed = first['status'] != 'ok'
            if step.expect == CONVERGE and failed:
                out.append('%s should converge despite the faults, failed: %s' % (step.name, first['result'].get('msg')))
            if step.expect == FAIL and not failed:
                out.append('%s should have failed under the fault, but succeeded' % step.name)
            if failed:
                why = unclear_reason(first['result'])
                if why:
                    out.append('%s failed without a clear message: %s' % (step.name, why))
                elif step.says and step.expect == FAIL and not re.search(step.says, first['result']['msg'], re.I):
                    out.append('%s failed, but the message does not say why (/%s/): %s'
                               % (step.name, step.says, first['result']['msg'][:400]))
            again = self.rerun.record(step.name)
            if again['status'] != 'ok':
                out.append('%s did not converge on the rerun: %s' % (step.name, again['result'].get('msg')))
        for rule in self.rules:
            if rule['fired'] < 1:
                out.append('fault rule never fired: %s' % dict((k, v) for k, v in rule.items() if k != 'fired'))
        for kind, n in sorted((self.left or {}).items()):
            if n:
                out.append('left behind: %d %s' % (n, kind))
        for kind, n in sorted((self.kube_left or {}).items()):
            if n:
                out.append('left behind in Kubernetes: %d %s' % (n, kind))
        return out

    def record_figures(self, steps):
        if self.error is not None or self.first is None or self.rerun is None:
            FIGURES.fault(self.name, len(steps), 0, 0, 0)
            return
        first_ok = sum(1 for s in steps if self.first.record(s.name)['status'] == 'ok')
        clean = sum(1 for s in steps if self.first.record(s.name)['status'] != 'ok'
                    and unclear_reason(self.first.record(s.name)['result']) is None)
        rerun_ok = sum(1 for s in steps if self.rerun.record(s.name)['status'] == 'ok')
        FIGURES.fault(self.name, len(steps), first_ok, rerun_ok, clean)
        counts = dict(self.left or {})
        for k, v in (self.kube_left or {}).items():
            counts['kubernetes ' + k] = v
        FIGURES.leaked(self.name, counts)


class Scenario(object):
    """A fault scenario on a fresh cloud: set up, first run, recover, rerun, count."""

    name = None
    kube = False
    allow_failed = ()

    def __init__(self, factory, workdir):
        self.factory = factory
        self.workdir = workdir
        self.sim = None
        self.world = None

    def steps(self):
        raise NotImplementedError

    def start(self):
        if self.kube:
            self.world = self.factory.kube()
        else:
            self.sim = self.factory.cloud()

    def inject(self):
        """Set the faults up (after the baseline census)."""

    def during_first_run(self):
        """Return a callable that stops whatever runs beside the first run, or None."""
        return None

    def recover(self):
        """The fault condition passes."""
        if self.sim is not None:
            self.sim.clear_faults()

    def run(self):
        outcome = Outcome(self.name)
        steps = []
        try:
            self.start()
            steps = self.steps()
            before = census(self.sim) if self.sim is not None else None
            self.inject()
            stop = self.during_first_run()
            try:
                outcome.first = run_playbook(play([s.task() for s in steps], name=self.name),
                                             os.path.join(self.workdir, 'first'), openstack=self.sim, kube=self.world)
            finally:
                if stop is not None:
                    stop()
            # Every rule the scenario set must have hit the run: one that never fired tested nothing.
            outcome.rules = self.sim.faults() if self.sim is not None else []
            self.recover()
            outcome.rerun = run_playbook(play([s.task(rerun=True) for s in steps], name=self.name + ' (rerun)'),
                                         os.path.join(self.workdir, 'rerun'), openstack=self.sim, kube=self.world)
            if self.sim is not None:
                outcome.left = leftovers(before, census(self.sim), self.allow_failed)
            if self.world is not None:
                outcome.kube_left = self.kube_leftovers()
            self.notes(outcome)
        except Exception as exc:  # noqa: BLE001 - reported by the scenario's test
            outcome.error = exc
        outcome.steps = steps
        return outcome

    def notes(self, outcome):
        """Facts about the faults themselves (did they fire?), for the scenario's test."""


# --------------------------------------------------------------------------- OpenStack scenarios

def lifecycle_steps(says=None, kubeconfig_dir=None):
    """Every OpenStack module of the collection once, in the order a site run uses them."""
    return [
        Step('template', 'cluster_template', TEMPLATE, says=says),
        Step('cluster', 'cluster', {'name': 'rel-c', 'cluster_template': 'rel-tpl', 'node_count': 1,
                                    'timeout': 60}, says=says),
        Step('nodegroup', 'cluster_nodegroup', {'cluster': 'rel-c', 'name': 'extra', 'flavor': 'm1.small',
                                                'node_count': 1, 'timeout': 60}, says=says),
        Step('resize', 'cluster', {'name': 'hpc-heat', 'node_count': 3, 'timeout': 60}, says=says),
        Step('info', 'cluster_info', {'name': 'rel-c'}, says=says),
        Step('nodes', 'cluster_nodes', {'cluster': 'rel-c'}, says=says),
        Step('stack', 'stack_facts', {'cluster': 'rel-c', 'nested_depth': 2}, says=says),
        Step('kubeconfig', 'cluster_kubeconfig', {'cluster': 'rel-c', 'dest': os.path.join(kubeconfig_dir, 'rel-c'),
                                                  'timeout': 60}, says=says),
        Step('interfaces', 'server_interfaces', {'cluster': 'rel-c', 'interfaces': [{'network': 'eth-10g'}],
                                                 'retry_delay': 0.2, 'timeout': 30}, says=says),
        Step('nodegroup delete', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu', 'state': 'absent',
                                                       'timeout': 60}, says=says),
    ]


class ServerErrors(Scenario):
    """5xx answers at 8% from Nova, Neutron, Glance, Magnum and Heat (Keystone: see below)."""

    name = '5xx answers (8%)'

    def steps(self):
        return lifecycle_steps(SAYS_UNAVAILABLE, os.path.join(self.workdir, 'kube'))

    def inject(self):
        self.sim.set_faults([{'status': 503, 'rate': 0.05, 'path_regex': '^/(compute|network|image|orchestration)'},
                             {'status': 500, 'rate': 0.03, 'path_regex': '^/(compute|network|image|orchestration)'},
                             {'status': 503, 'rate': 0.08, 'path_regex': '^/container-infra'}], seed=11)

    def recover(self):
        self.fired = sum(r['fired'] for r in self.sim.faults())
        self.sim.clear_faults()

    def notes(self, outcome):
        outcome.notes['fired'] = self.fired


class ConflictStorms(Scenario):
    """409 storms on Magnum actions and on Nova's interface attach: retried, never duplicated."""

    name = '409 storms'

    def steps(self):
        return [
            Step('resize', 'cluster', {'name': 'hpc-heat', 'node_count': 3, 'timeout': 60}, CONVERGE),
            Step('nodegroup', 'cluster_nodegroup', {'cluster': 'hpc-capi', 'name': 'extra', 'flavor': 'm1.small',
                                                    'node_count': 1, 'timeout': 60}, CONVERGE),
            Step('nodegroup resize', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu', 'node_count': 2,
                                                           'timeout': 60}, CONVERGE),
            Step('interfaces', 'server_interfaces', {'cluster': 'hpc-capi', 'interfaces': [{'network': 'eth-10g'}],
                                                     'retry_delay': 0.1, 'timeout': 30}, CONVERGE),
        ]

    def inject(self):
        locked = 'Cluster is locked by another operation.'
        self.sim.set_faults([
            {'kind': 'conflict_storm', 'service': 'magnum', 'path_regex': '/actions/resize$', 'count': 3,
             'message': locked},
            {'kind': 'conflict_storm', 'service': 'magnum', 'method': 'POST', 'path_regex': '/nodegroups$',
             'count': 2, 'message': locked},
            {'kind': 'conflict_storm', 'service': 'compute', 'path_regex': '/os-interface$', 'count': 3},
        ])

    def recover(self):
        self.fired = dict((r.get('path_regex'), r['fired']) for r in self.sim.faults())
        self.sim.clear_faults()

    def notes(self, outcome):
        outcome.notes['fired'] = self.fired


class SlowBuilds(Scenario):
    """Builds slower than the module's timeout: a clear timeout, then a rerun that waits."""

    name = 'slow builds'

    def steps(self):
        return [
            Step('cluster', 'cluster', {'name': 'rel-slow', 'cluster_template': 'k8s-heat-fcos', 'node_count': 1,
                                        'timeout': 1}, FAIL, says=r'Timed out .*CREATE_IN_PROGRESS.*rerun',
                 rerun={'timeout': 60}),
            Step('nodegroup', 'cluster_nodegroup', {'cluster': 'hpc-capi', 'name': 'slowgroup', 'node_count': 1,
                                                    'flavor': 'm1.small', 'timeout': 1}, FAIL,
                 says=r'Timed out .*CREATE_IN_PROGRESS', rerun={'timeout': 60}),
            Step('interfaces', 'server_interfaces', {'cluster': 'hpc-capi', 'interfaces': [{'network': 'eth-10g'}],
                                                     'timeout': 60}, CONVERGE),
        ]

    def inject(self):
        # Every API answer takes 150 ms more, creates take seconds.
        self.sim.set_latency(150)
        self.sim.set_timings(cluster_create=3, nodegroup_create=3, attach=0.5, port_bind=0.5)

    def recover(self):
        self.sim.set_latency(0)


class FailedStates(Scenario):
    """CREATE_FAILED and DELETE_FAILED: the reason is returned, nothing half-made stays."""

    name = 'CREATE_FAILED / DELETE_FAILED'

    def steps(self):
        return [
            Step('create', 'cluster', {'name': 'rel-doomed', 'cluster_template': 'k8s-heat-fcos', 'node_count': 2,
                                       'timeout': 60}, FAIL, says=r'failed to create: No valid host.*was deleted'),
            Step('delete', 'cluster', {'name': 'hpc-capi', 'state': 'absent', 'timeout': 60}, FAIL,
                 says=r'DELETE_FAILED'),
        ]

    def inject(self):
        self.sim.set_faults([
            {'kind': 'cluster_create_failed', 'name_regex': '^rel-doomed$', 'count': 1,
             'reason': 'No valid host was found. There are not enough hosts available.'},
            {'kind': 'cluster_delete_failed', 'name_regex': '^hpc-capi$', 'count': 1,
             'reason': 'Resource DELETE failed: Conflict: resources.network: port still in use'},
        ])


class ServerVanishes(Scenario):
    """A node disappears while the module attaches networks to it (and to the others)."""

    name = 'server vanishes mid-run'

    def steps(self):
        self.victim = self.worker_names()[0]
        return [
            # port_name makes the module create the ports itself: those it must clean up.
            Step('interfaces', 'server_interfaces', {
                'cluster': 'hpc-heat', 'nodegroups': ['default-worker'],
                'interfaces': [{'network': 'eth-10g', 'port_name': '{server}-{network}'},
                               {'network': 'ib-100g', 'port_name': '{server}-{network}'}],
                'retry_delay': 0.1, 'timeout': 30}, FAIL, says=re.escape(self.victim) + '.*deleted during the run'),
            Step('nodes', 'cluster_nodes', {'cluster': 'hpc-heat'}),
        ]

    def worker_names(self):
        state = self.sim.state()
        cluster = [c for c in state['clusters'] if c['name'] == 'hpc-heat'][0]
        return [ng for ng in cluster['nodegroups'] if ng['name'] == 'default-worker'][0]['server_names']

    def inject(self):
        victim_id = [s['id'] for s in self.sim.state()['servers'] if s['name'] == self.victim][0]
        # The victim's attach requests are slow, so it vanishes while one is on the wire.
        self.sim.set_faults([{'service': 'compute', 'method': 'POST',
                              'path_regex': '/servers/%s/os-interface$' % victim_id, 'latency_ms': 1200}])

    def during_first_run(self):
        done = threading.Event()
        sim = self.sim
        victim = self.victim

        def watch():
            while not done.is_set():
                if any(route.endswith('/os-interface') and route.startswith('POST')
                       for route in sim.requests()['by_route']):
                    time.sleep(0.4)
                    sim.add_faults([{'kind': 'server_vanish', 'name_regex': '^%s$' % re.escape(victim)}])
                    return
                time.sleep(0.05)

        t = threading.Thread(target=watch, daemon=True)
        t.start()

        def stop():
            done.set()
            t.join(5)
        return stop

    def notes(self, outcome):
        outcome.notes['victim_gone'] = not any(s['name'] == self.victim for s in self.sim.state()['servers'])


class TokenExpiry(Scenario):
    """Keystone revokes every token again and again while the modules work."""

    name = 'Keystone token expiry mid-run'

    def steps(self):
        return [
            Step('template', 'cluster_template', TEMPLATE, CONVERGE),
            Step('cluster', 'cluster', {'name': 'rel-t', 'cluster_template': 'rel-tpl', 'node_count': 1,
                                        'timeout': 60}, CONVERGE),
            Step('nodegroup', 'cluster_nodegroup', {'cluster': 'rel-t', 'name': 'extra', 'flavor': 'm1.small',
                                                    'node_count': 1, 'timeout': 60}, CONVERGE),
            Step('kubeconfig', 'cluster_kubeconfig', {'cluster': 'rel-t', 'dest': os.path.join(
                self.workdir, 'kube', 'rel-t'), 'timeout': 60}, CONVERGE),
            Step('nodes', 'cluster_nodes', {'cluster': 'rel-t'}, CONVERGE),
            Step('stack', 'stack_facts', {'cluster': 'rel-t'}, CONVERGE),
            Step('interfaces', 'server_interfaces', {'cluster': 'rel-t', 'interfaces': [{'network': 'eth-10g'}],
                                                     'timeout': 30}, CONVERGE),
        ]

    def during_first_run(self):
        done = threading.Event()
        sim = self.sim
        self.revocations = 0

        def revoke():
            while not done.wait(0.6):
                sim.add_faults([{'kind': 'token_expire_all'}])
                self.revocations += 1

        self.logins_before = self.logins()
        t = threading.Thread(target=revoke, daemon=True)
        t.start()

        def stop():
            done.set()
            t.join(5)
            self.logins_during = self.logins() - self.logins_before
        return stop

    def logins(self):
        return self.sim.requests()['by_route'].get('POST /identity/v3/auth/tokens', 0)

    def notes(self, outcome):
        outcome.notes['revocations'] = self.revocations
        outcome.notes['logins'] = self.logins_during


class StuckBuild(Scenario):
    """A create that never finishes: the module gives up clearly, and the operator can abort it."""

    name = 'stuck build'

    def steps(self):
        return [
            Step('stuck', 'cluster', {'name': 'rel-stuck', 'cluster_template': 'k8s-heat-fcos', 'node_count': 1,
                                      'timeout': 2}, FAIL, says=r'Timed out .*CREATE_IN_PROGRESS',
                 rerun={'state': 'absent', 'timeout': 4}),
        ]

    def inject(self):
        self.sim.set_faults([{'kind': 'cluster_stuck', 'name_regex': '^rel-stuck$', 'op': 'create', 'count': 1}])


# --------------------------------------------------------------------------- Kubernetes scenario

NS = 'hpcops-rel'
EL94 = '5.14.0-427.13.1.el9_4.x86_64'
EL95 = '5.14.0-503.11.1.el9_5.x86_64'


def kube_steps(wait=True):
    gpu = {'hpcops.example/gpu': 'true'}
    return [
        Step('rule', 'node_feature_rule', {'name': 'rel-rules', 'rules': [
            {'name': 'nvidia', 'labels': {'rel-gpu': 'true'}, 'pci': {'vendor': '10de'}}]},
            says=SAYS_UNAVAILABLE + '|Conflict|HTTP 409'),
        Step('module', 'kernel_module', {
            'name': 'nvidia', 'namespace': NS, 'module_name': 'nvidia', 'selector': gpu,
            'container_image': 'registry.example.com/drivers/nvidia:550-${KERNEL_FULL_VERSION}',
            'kernels': [EL94, EL95], 'wait_sleep': 0.2, 'wait_timeout': 20,
            'pull_secret': {'name': 'rel-pull', 'registry': 'registry.example.com', 'username': 'robot',
                            'password': 'rel-pull-password'}}, says=SAYS_UNAVAILABLE + '|Conflict|HTTP 409'),
        Step('plugin', 'device_plugin', {'type': 'nvidia-gpu', 'namespace': NS, 'node_selector': gpu,
                                         'wait_sleep': 0.2, 'wait_timeout': 20},
             says=SAYS_UNAVAILABLE + '|Conflict|HTTP 409'),
        Step('validation', 'accelerator_validation', {
            'name': 'rel-gpu-check', 'namespace': NS, 'resource': 'nvidia.com/gpu', 'image': 'cuda:12',
            'command': ['nvidia-smi', '-L'], 'wait_sleep': 0.2, 'wait_timeout': 20},
            says=SAYS_UNAVAILABLE + '|Conflict|HTTP 409'),
    ]


class KubeErrors(Scenario):
    """500s at 8% from the Kubernetes API, 409 conflicts on writes, and a 403 that is fixed later."""

    name = 'Kubernetes API errors and conflicts'
    kube = True

    def steps(self):
        return kube_steps()

    def start(self):
        Scenario.start(self)
        world = self.world
        components.install_crds(world, ['nfd', 'kmm'])
        components.deploy_kmm(world)
        components.namespace(world, NS)
        for node in ('gpu-1', 'gpu-2'):
            world.call(world.sim.hw[node].loaded.add, 'nvidia')
            # node images with the NVIDIA container runtime as containerd's default
            world.call(world.sim.gpu.preinstall, node)
            world.label_node(node, {'hpcops.example/gpu': 'true'})

    def inject(self):
        self.faults = KubeFaults(self.world, rate=0.08, seed=5)
        for resource in ('configmaps', 'modules', 'jobs', 'secrets'):
            self.world.conflict(resource, count=1)
        self.denied = self.world.deny('daemonsets', 'patch', group='apps', namespace=NS)

    def recover(self):
        self.faults.stop()
        self.world.allow(self.denied)
        self.world.call(self.world.server.conflicts.clear)
        self.fired = self.faults.fired

    def kube_leftovers(self):
        world = self.world
        world.wait_for(lambda: not world.list('v1', 'Pod', NS, label_selector='hpcops.coe/validation'),
                       timeout=10, what='validation pods to go')
        managed = []
        for api, kind in (('v1', 'ConfigMap'), ('v1', 'Secret'), ('apps/v1', 'DaemonSet'), ('batch/v1', 'Job'),
                          ('kmm.sigs.x-k8s.io/v1beta1', 'Module')):
            for obj in world.list(api, kind, NS):
                owners = [m.get('manager') for m in obj['metadata'].get('managedFields') or []]
                if 'hpcops.coe' in owners:
                    managed.append('%s/%s' % (kind, obj['metadata']['name']))
        # ConfigMap/rel-gpu-check-validated: the validation's record of the nodes that passed.
        wanted = {'ConfigMap/nvidia-device-plugin-config', 'Secret/rel-pull', 'DaemonSet/nvidia-device-plugin',
                  'Module/nvidia', 'ConfigMap/rel-gpu-check-validated'}
        rules = [r['metadata']['name'] for r in world.list('nfd.k8s-sigs.io/v1alpha1', 'NodeFeatureRule')]
        return {
            'validation jobs': len(world.list('batch/v1', 'Job', NS, label_selector='hpcops.coe/validation')),
            'validation pods': len(world.list('v1', 'Pod', NS, label_selector='hpcops.coe/validation')),
            'unexpected objects': len(set(managed) - wanted) + len([r for r in rules if r != 'rel-rules']),
            'missing objects': len(wanted - set(managed)) + (0 if 'rel-rules' in rules else 1),
        }

    def notes(self, outcome):
        outcome.notes['fired'] = self.fired
        outcome.notes['writes'] = len(kube_writes(self.world))


SCENARIOS = (ServerErrors, ConflictStorms, SlowBuilds, FailedStates, ServerVanishes, TokenExpiry, StuckBuild,
             KubeErrors)


@pytest.fixture(scope='module')
def outcomes(module_factory, tmp_path_factory):
    """Every scenario, three at a time, each on its own fresh cloud."""
    base = str(tmp_path_factory.mktemp('faults'))
    scenarios = [cls(module_factory, os.path.join(base, 'scenario-%d' % i)) for i, cls in enumerate(SCENARIOS)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(lambda s: s.run(), scenarios))
    out = {}
    for scenario, outcome in zip(scenarios, done):
        outcome.record_figures(outcome.steps)
        out[type(scenario).__name__] = outcome
    return out


def check(outcome):
    problems = outcome.problems(outcome.steps)
    assert not problems, '%s:\n  %s\n%s' % (outcome.name, '\n  '.join(problems), outcome.first.explain()
                                            if outcome.first else '')


def test_5xx_answers_converge_or_fail_clearly(outcomes):
    outcome = outcomes['ServerErrors']
    check(outcome)
    # The faults really hit the run: some requests were refused.
    assert outcome.notes['fired'] >= 3, outcome.notes


def test_409_storms_are_retried_to_convergence(outcomes):
    outcome = outcomes['ConflictStorms']
    check(outcome)
    assert all(n > 0 for n in outcome.notes['fired'].values()), outcome.notes


def test_slow_builds_time_out_clearly_and_a_rerun_waits(outcomes):
    check(outcomes['SlowBuilds'])


def test_create_failed_and_delete_failed_leave_nothing(outcomes):
    outcome = outcomes['FailedStates']
    check(outcome)
    failed = outcome.first.result('create')
    assert 'No valid host was found' in failed['status_reason'] and isinstance(failed['faults'], dict)


def test_server_vanishing_mid_run_leaks_no_port(outcomes):
    outcome = outcomes['ServerVanishes']
    assert outcome.notes.get('victim_gone'), 'the fault did not fire: %s' % outcome.notes
    check(outcome)
    result = outcome.first.result('interfaces')
    # The other workers still got their networks.
    others = [s for s in result['servers'] if not s['failed']]
    assert others and all(len(s['attached']) == 2 for s in others), result['servers']


def test_token_expiry_mid_run_is_survived(outcomes):
    outcome = outcomes['TokenExpiry']
    check(outcome)
    # Tokens were revoked during the run and the modules logged in again.
    assert outcome.notes['revocations'] >= 3 and outcome.notes['logins'] >= 3, outcome.notes


def test_stuck_build_times_out_clearly_and_can_be_aborted(outcomes):
    check(outcomes['StuckBuild'])


def test_kubernetes_api_errors_and_conflicts(outcomes):
    outcome = outcomes['KubeErrors']
    check(outcome)
    assert outcome.notes['fired'] >= 1, outcome.notes


def test_a_keystone_503_is_retried_or_named(cloud, tmp_path):
    # Keystone answers 503 once: on the version discovery every fresh session starts with.
    cloud.set_faults([{'service': 'identity', 'method': 'GET', 'path_regex': '^/identity/v3/?$', 'status': 503,
                       'count': 1}])
    run = run_playbook(play([{'name': 'info', 'hpcops.coe.cluster_info': {'nodegroups': False},
                              'ignore_errors': True}]), str(tmp_path), openstack=cloud)
    assert cloud.faults()[0]['fired'] == 1
    record = run.record('info')
    if record['status'] != 'ok':
        msg = record['result']['msg']
        assert unclear_reason(record['result']) is None, msg
        # The cloud's catalog has Magnum: the message must blame Keystone's 503, not a missing service.
        assert "not in the cloud's catalog" not in msg and re.search(r'503|unavailable', msg), msg
