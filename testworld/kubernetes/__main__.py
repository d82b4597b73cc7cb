"""python -m testworld.kubernetes serve --scenario PATH [--port 0] [--state-dir DIR] [--pidfile F]

Prints one JSON line once the API server answers:
    {"url": "https://127.0.0.1:PORT", "kubeconfig": "<state-dir>/kubeconfig",
     "ca": "<state-dir>/ca.crt", "ca_key": "<state-dir>/ca.key"}
and serves until SIGTERM or SIGINT.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading

from testworld.kubernetes.world import KubeWorld


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m testworld.kubernetes")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the simulated cluster")
    serve.add_argument("--scenario", required=True, help="scenario YAML file")
    serve.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    serve.add_argument("--state-dir", default=None, help="where the kubeconfig goes (default: a new temp dir)")
    serve.add_argument("--pidfile", default=None, help="write the process id here")
    serve.add_argument("--nfd-interval", type=float, default=1.0,
                       help="seconds between simulated nfd-worker passes (default 1)")
    args = parser.parse_args(argv)

    state_dir = args.state_dir or tempfile.mkdtemp(prefix="kubeworld-")
    world = KubeWorld.start(scenario=args.scenario, state_dir=state_dir, port=args.port,
                            nfd_interval=args.nfd_interval)
    if args.pidfile:
        with open(args.pidfile, "w", encoding="utf-8") as handle:
            handle.write("%d\n" % os.getpid())
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(json.dumps({"url": world.url, "kubeconfig": world.kubeconfig, "ca": world.ca_file,
                      "ca_key": world.ca_key_file}), flush=True)
    try:
        while not done.wait(1.0):
            pass
    finally:
        world.stop()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
