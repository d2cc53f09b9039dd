"""``python -m vortexdb view STORE [--port N] [--sample S]``: serve the interactive
viewer on 127.0.0.1, print its URL and run until Ctrl-C. ``python -m vortexdb archive
...``: archives of shards on Ray (:mod:`vortexdb.archive`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    """The command line: ``view`` and ``archive``."""
    ap = argparse.ArgumentParser(prog="python -m vortexdb", description="vortexdb from Python")
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("view", help="open a store in the interactive browser viewer (127.0.0.1 only)")
    v.add_argument("store", help="the store directory")
    v.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    v.add_argument("--sample", default=None, help="sample shown first (default: the first)")
    from .archive import _cli as archive_cli

    archive_cli.add_parser(sub)
    args = ap.parse_args(argv)
    if args.command == "archive":
        return archive_cli.main(args)
    from . import view

    # Ctrl-C stops it even when started with SIGINT ignored (a shell's background job
    # inherits that, and Python then never raises KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    viewer = view(args.store, sample=args.sample, port=args.port)
    print(f"vortexdb viewer: {viewer.url}", flush=True)
    print("(serving on 127.0.0.1 only; Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        # Stopping must not hang the command: neuroglancer's server thread is given 10 s.
        t = threading.Thread(target=viewer.stop, daemon=True)
        t.start()
        t.join(10)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without waiting for the server's non-daemon threads (the store is closed and
    # its lock is the process's).
    os._exit(code)
