# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Concurrency: two runs at once against one cloud make one of everything.

Two ansible-playbook processes start together against one simulated cloud:
two whole site runs (the cluster role, then the networks role on the cluster's
nodes), and, to tell which step holds and which does not, two runs of one
module at a time (template, cluster, nodegroup, interfaces).

Left to chance, the runs overlap only sometimes, and a race that is lost once
in ten runs makes a flaky test. So the cloud holds exactly the requests where a
second run could slip in: every request that creates the contested object (POST
of a template, cluster, nodegroup, interface attachment) waits until the other
run has sent one too (a rendezvous of two clients), so both runs have read the
cloud before either create lands, however the machine's load spaces their
starts. Each race has its own cloud.
"""

import os

import pytest

from reliability_kit import FIGURES, census, leftovers, play, run_playbook, run_together, task

# The longest a held request waits for the other run: far longer than two runs drift
# apart on a loaded machine, and only ever spent when a run never sends its create.
HOLD_MS = 60000
TEMPLATE = {'name': 'rel-race-tpl', 'image': 'fedora-coreos-40', 'keypair': 'hpc-key', 'external_network': 'public',
            'flavor': 'm1.small', 'master_flavor': 'm1.large', 'labels': {'hpcops_sim_driver': 'heat'}}
# Virtual machines: nothing but the module's own care stops a second attachment to one network
# (bare-metal nodes run out of NICs and Nova refuses it).
VMS = ['login-1', 'hpc-heat-scratch-node-0']


def hold(path_regex, count=2):
    return {'method': 'POST', 'path_regex': path_regex, 'rendezvous': 2, 'latency_ms': HOLD_MS, 'count': count}


# Attachments cannot be held until both runs send one: runs on one machine take turns per
# server (the module's lock), so the second run's attach waits for the first run to finish
# that server. Slowing every attach down makes the runs overlap instead.
SLOW_ATTACH = {'method': 'POST', 'path_regex': '/os-interface$', 'latency_ms': 400}


def site_play(name, workdir):
    cluster = {'cluster_name': 'rel-site', 'cluster_cloud': 'hpcops-sim', 'cluster_node_count': 2,
               'cluster_template': TEMPLATE, 'cluster_nodegroups': [{'name': 'extra', 'flavor': 'm1.small',
                                                                     'node_count': 1}],
               'cluster_kubeconfig_path': os.path.join(workdir, 'rel-site.kubeconfig'), 'cluster_timeout': 120,
               'cluster_add_hosts': False}
    networks = {'networks_cloud': 'hpcops-sim', 'networks_cluster': 'rel-site', 'networks_configure_nodes': False,
                'networks_list': [{'name': 'eth-10g'}, {'name': 'eth-25g'}], 'networks_timeout': 60}
    return [{'name': 'cluster (%s)' % name, 'hosts': 'localhost', 'gather_facts': False,
             'roles': [{'role': 'hpcops.coe.cluster', 'vars': cluster}]},
            {'name': 'networks (%s)' % name, 'hosts': 'localhost', 'gather_facts': False,
             'roles': [{'role': 'hpcops.coe.networks', 'vars': networks}]}]


RACES = {
    'site': (site_play,
             [hold('/clustertemplates$'), hold('/clusters$'), hold('/nodegroups$'), SLOW_ATTACH]),
    'template': (lambda name, workdir: play([task('cluster_template', TEMPLATE, 'race')]),
                 [hold('/clustertemplates$')]),
    'cluster': (lambda name, workdir: play([task('cluster', {'name': 'rel-race', 'cluster_template': 'k8s-heat-fcos',
                                                             'node_count': 1, 'timeout': 60}, 'race')]),
                [hold('/clusters$')]),
    'nodegroup': (lambda name, workdir: play([task('cluster_nodegroup', {
        'cluster': 'hpc-capi', 'name': 'rel-race', 'flavor': 'm1.small', 'node_count': 1, 'timeout': 60}, 'race')]),
        [hold('/nodegroups$')]),
    'interfaces': (lambda name, workdir: play([task('server_interfaces', {
        'servers': VMS, 'interfaces': [{'network': 'eth-10g'}, {'network': 'eth-25g'}]}, 'race')]),
        [SLOW_ATTACH]),
}


class Race(object):
    def __init__(self, name, factory, workdir):
        self.name = name
        self.cloud = factory.cloud()
        self.workdir = workdir
        self.error = None

    def go(self):
        try:
            make, faults = RACES[self.name]
            self.before = census(self.cloud)
            self.cloud.set_faults(faults)
            self.runs = run_together(*[
                lambda i=i: run_playbook(make('run %d' % i, os.path.join(self.workdir, str(i))),
                                         os.path.join(self.workdir, str(i)), openstack=self.cloud)
                for i in (0, 1)])
            # How many runs met at every contested request (2 when they all overlapped).
            self.rules = self.cloud.faults()
            self.met = min([r['clients'] for r in self.rules if r.get('rendezvous')] or [2])
            self.cloud.clear_faults()
            self.after = census(self.cloud)
            self.left = leftovers(self.before, self.after)
        except Exception as exc:  # noqa: BLE001 - reported by the race's test
            self.error = exc
        return self

    def check(self):
        assert self.error is None, repr(self.error)
        problems = ['left behind: %d %s' % (n, k) for k, n in sorted(self.left.items()) if n]
        for i, run in enumerate(self.runs):
            if run.rc != 0:
                problems.append('run %d failed: %s' % (i, run.explain()[:1500]))
        FIGURES.concurrency.append((self.name, not problems))
        # Both runs really met at the contested requests.
        assert self.met == 2, 'the runs did not meet at every contested request: %s' % self.rules
        assert all(r['fired'] >= 1 for r in self.rules), 'a rule never fired: %s' % self.rules
        assert not problems, '\n'.join(problems)


@pytest.fixture(scope='module')
def races(module_factory, tmp_path_factory):
    base = str(tmp_path_factory.mktemp('races'))
    out = dict((name, Race(name, module_factory, os.path.join(base, name))) for name in RACES)
    run_together(*[r.go for r in out.values()])
    return out


def test_two_site_runs_at_once_make_one_cluster_and_one_set_of_interfaces(races):
    race = races['site']
    assert race.error is None, repr(race.error)
    clusters = [c for c in race.after['clusters'] if c['name'] == 'rel-site']
    FIGURES.concurrency.append(('site: one cluster', len(clusters) == 1))
    assert len(clusters) == 1, clusters
    race.check()


def test_two_runs_create_one_template(races):
    races['template'].check()


def test_two_runs_create_one_cluster(races):
    race = races['cluster']
    race.check()
    assert len([c for c in race.after['clusters'] if c['name'] == 'rel-race']) == 1
    # Both runs report the same cluster.
    ids = set(r.result('race')['cluster']['id'] for r in race.runs)
    assert len(ids) == 1, ids


def test_two_runs_create_one_nodegroup(races):
    race = races['nodegroup']
    race.check()
    capi = [c for c in race.after['clusters'] if c['name'] == 'hpc-capi'][0]
    assert [g['name'] for g in race.after['nodegroups'][capi['uuid']]].count('rel-race') == 1


def test_two_runs_attach_one_set_of_interfaces(races):
    races['interfaces'].check()
