"""python -m testworld.openstack serve --scenario PATH [options]

Prints one JSON line on stdout once the cloud answers, then serves until
SIGTERM or SIGINT.
"""

import argparse
import json
import os
import signal
import sys
import threading


def _parse_kv(items, convert):
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit("expected KEY=VALUE, got %r" % item)
        out[key.strip()] = convert(value)
    return out


def _json_or_str(value):
    try:
        return json.loads(value)
    except ValueError:
        return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m testworld.openstack")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the simulated cloud")
    serve.add_argument("--scenario", default="default", help="scenario file, or the name of one in testworld/scenarios")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--state-dir", default=os.path.join(".testworld", "openstack"),
                       help="where clouds.yaml is written (default: .testworld/openstack)")
    serve.add_argument("--kube-api-url", default=None, help="api_address of every cluster (a Kubernetes test world)")
    serve.add_argument("--latency-ms", type=float, default=None, help="added to every service request")
    serve.add_argument("--pidfile", default=None)
    serve.add_argument("--timing", action="append", metavar="NAME=SECONDS", help="override a timing (repeatable)")
    serve.add_argument("--set", action="append", metavar="KEY=JSON", help="override a top-level scenario key")
    args = parser.parse_args(argv)

    from . import scenario as scenario_mod
    from .control import CLOUD_NAME, Running

    overrides = {"kube_api_url": args.kube_api_url, "latency_ms": args.latency_ms}
    overrides.update(_parse_kv(args.set, _json_or_str))
    timings = _parse_kv(args.timing, float)
    if timings:
        overrides["timings"] = timings
    scn = scenario_mod.load(args.scenario, **overrides)
    running = Running(scn, os.path.abspath(args.state_dir), args.host, args.port)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sys.stdout.write(json.dumps({"url": running.url, "clouds_yaml": running.clouds_yaml, "cloud": CLOUD_NAME}) + "\n")
    sys.stdout.flush()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        running.stop()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
