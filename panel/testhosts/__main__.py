"""Debugging CLI for test hosts.

    python -m panel.testhosts build
    python -m panel.testhosts start web1 --role web [--web-server apache2] [--key FILE.pub]
    python -m panel.testhosts list
    python -m panel.testhosts stop web1 | --all

``start`` stays in the foreground (hosts die with the process that started them) and stops
its host on Ctrl-C, SIGTERM, or ``stop`` from another shell.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import cast, get_args

from .build import BASE, TestHostError, default_workdir, ensure_layers
from .lab import Lab, Role, WebServer, list_hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m panel.testhosts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workdir", type=Path, default=None, help=f"default {default_workdir()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the base layer if missing or outdated")
    start = sub.add_parser("start", help="start one host and keep it until interrupted")
    start.add_argument("name")
    start.add_argument("--role", action="append", choices=get_args(Role), default=[])
    start.add_argument("--web-server", choices=get_args(WebServer), default="nginx")
    start.add_argument(
        "--key", action="append", type=Path, default=[], help="public key file for root"
    )
    start.add_argument("--bridge", default="thbr0")
    start.add_argument("--subnet", default="10.77.0")
    sub.add_parser("list", help="hosts run by live labs on this machine")
    stop = sub.add_parser("stop", help="stop a host started by another process")
    stop.add_argument("name", nargs="?")
    stop.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            started = time.monotonic()
            root = ensure_layers(BASE, args.workdir)[0]
            print(f"{root} ({time.monotonic() - started:.1f} s)")
        elif args.command == "start":
            return _start(args)
        elif args.command == "list":
            for rec in list_hosts(args.workdir):
                roles = ",".join(cast(list[str], rec["roles"]))
                print(
                    f"{rec['name']:<12} {rec['address']:<15} pid={rec['pid']} "
                    f"owner={rec['owner_pid']} roles={roles} bridge={rec['bridge']}"
                )
        elif args.command == "stop":
            return _stop(args)
    except TestHostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _start(args: argparse.Namespace) -> int:
    keys = [p.expanduser().read_text() for p in args.key]
    with Lab(args.workdir, bridge=args.bridge, subnet=args.subnet) as lab:
        started = time.monotonic()
        host = lab.start(
            args.name, roles=args.role, authorized_keys=keys, web_server=args.web_server
        )
        host.wait_ready(timeout=60)
        print(f"{host.name} ready in {time.monotonic() - started:.2f} s")
        print(f"  address  {host.address} (ssh root@{host.address})")
        print(f"  host key {host.address} {host.host_key}")
        print(f"  shell    nsenter -t {host.pid} -a -r -w bash")
        print(f"  files    {host.root}/", flush=True)
        stop = False

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop and host.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        print(f"stopping {host.name}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    records = list_hosts(args.workdir)
    chosen = records if args.all else [r for r in records if r["name"] == args.name]
    if not chosen:
        print(f"no running host {args.name!r}", file=sys.stderr)
        return 1
    for rec in chosen:
        # The owner notices and cleans up (the CLI polls host.running).
        os.kill(cast(int, rec["pid"]), signal.SIGTERM)
        print(f"stopped {rec['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
