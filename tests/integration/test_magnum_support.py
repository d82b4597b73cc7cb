# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the test_magnum_* integration tests (this file holds no tests)."""

import json
import os

PLAYBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'playbooks', 'magnum')
CLOUD = 'hpcops-sim'


def play(tasks, cloud=CLOUD, name='magnum test'):
    """A playbook (YAML text) of `tasks`: dicts like {'name':..., 'hpcops.coe.cluster': {...}}."""
    doc = [{
        'name': name,
        'hosts': 'localhost',
        'gather_facts': False,
        'module_defaults': {'group/hpcops.coe.openstack': {'cloud': cloud}},
        'tasks': list(tasks),
    }]
    # JSON is YAML; the trailing newline marks it as playbook text for run_playbook.
    return json.dumps(doc, indent=1) + '\n'


# A build long enough that the next module run (one ansible-playbook process or task later) still
# finds it in progress, even on a 2-core machine running every suite at once: starting a module
# there has been seen to take over 10 s.
BUILD_OUTLASTS_NEXT_RUN = 30


# Modules that wait; a bounded timeout turns a wrong wait condition into a failure, not a hang.
# Bounded well above what a build takes: real Heat building a nodegroup on a loaded two-core
# machine has taken more than 120 s.
WAITING = ('cluster', 'cluster_nodegroup', 'cluster_kubeconfig')
WAIT_BOUND = 600


def task(module, args, name='step', **keywords):
    args = dict(args)
    if module in WAITING and args.get('state') != 'absent':
        args.setdefault('timeout', WAIT_BOUND)
    t = {'name': name, 'hpcops.coe.' + module: args}
    t.update(keywords)
    return t


def one(module, args, name='step', cloud=CLOUD, **keywords):
    return play([task(module, args, name, **keywords)], cloud=cloud)


def clusters_named(state, name, live=True):
    return [c for c in state['clusters'] if c['name'] == name
            and (not live or c['status'] not in ('DELETE_IN_PROGRESS', 'DELETE_COMPLETE'))]


def cluster_state(state, name):
    hits = clusters_named(state, name)
    assert len(hits) == 1, 'expected one live cluster %r, found %s' % (name, hits)
    return hits[0]


def nodegroup_state(cluster, name):
    return [g for g in cluster['nodegroups'] if g['name'] == name][0]


def magnum_writes(requests):
    """{route: count} of Magnum requests that change something (POST/PATCH/PUT/DELETE)."""
    return dict((route, n) for route, n in requests['by_route'].items()
                if '/container-infra/' in route and route.split(' ', 1)[0] in ('POST', 'PATCH', 'PUT', 'DELETE'))


def magnum_requests(requests):
    return requests['by_service'].get('container-infra', 0)


def route_count(requests, method, fragment):
    return sum(n for route, n in requests['by_route'].items()
               if route.startswith(method + ' ') and fragment in route)
