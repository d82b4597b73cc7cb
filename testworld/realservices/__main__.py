# -*- coding: utf-8 -*-
"""python -m testworld.realservices start|stop|status|register-sim --state-dir DIR"""

import argparse
import json
import sys

from testworld.realservices.controller import RealServices, RealServicesError, summary


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m testworld.realservices',
                                     description='Run a real Keystone and a real Heat beside the simulated cloud.')
    parser.add_argument('command', choices=('start', 'stop', 'status', 'register-sim'))
    parser.add_argument('--state-dir', required=True, help='where configuration, databases, logs and pids live')
    parser.add_argument('--scenario', help='start: also run the simulator on this scenario (name or path), on the real '
                                           'identities and bridged to the real Keystone and Heat')
    parser.add_argument('--sim-python', help='start --scenario: interpreter for the simulator (default: this one)')
    parser.add_argument('--sim-url', help='base URL of a simulated cloud already running: its services join the real catalog')
    parser.add_argument('--catalog', action='append', default=[], metavar='TYPE=URL',
                        help='register-sim/start: override the URL of one simulated service type')
    parser.add_argument('--tier', choices=('basic', 'full'), default='basic',
                        help='start: basic (Keystone and Heat) or full (also Placement, Nova, Neutron and Magnum, '
                             'on --scenario, default "default")')
    parser.add_argument('--timeout', type=float, default=240, help='start: seconds to wait for health')
    parser.add_argument('--keep', action='store_true', help='stop: keep the state directory (logs)')
    args = parser.parse_args(argv)
    services = RealServices(args.state_dir)
    catalog = dict(item.split('=', 1) for item in args.catalog)
    try:
        if args.command == 'start':
            state = services.start(scenario=args.scenario, sim_url=args.sim_url, timeout=args.timeout,
                                   sim_python=args.sim_python, tier=args.tier)
            if catalog and state.get('sim_url'):
                state = services.register_sim(state['sim_url'], catalog)
            print(json.dumps(summary(state)), flush=True)
        elif args.command == 'register-sim':
            if not args.sim_url:
                parser.error('register-sim needs --sim-url')
            print(json.dumps(summary(services.register_sim(args.sim_url, catalog))), flush=True)
        elif args.command == 'stop':
            services.stop(keep=args.keep)
        else:
            status = services.status()
            print(json.dumps(dict(summary(status) if 'keystone_url' in status else {}, running=status['running'])))
            return 0 if status['running'] else 1
    except RealServicesError as exc:
        print('realservices: %s' % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
