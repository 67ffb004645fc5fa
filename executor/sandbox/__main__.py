"""``python -m covalent_ecs_executor.sandbox``: a sandbox in the foreground.

Used by ``SandboxProcess`` (``--ready-file``); ``covalent-ecs sandbox`` is the
user-facing command.
"""

from __future__ import annotations

import argparse
import json
import sys

from .foreground import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m covalent_ecs_executor.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--state-dir", help="default: a temporary directory, removed on exit")
    parser.add_argument("--ready-file", help="write JSON here once ready")
    parser.add_argument("--write-conf", help="set [executors.ecs] in this covalent.conf")
    parser.add_argument("--provision-delay", type=float, default=0.2, metavar="SECONDS")
    parser.add_argument("--deprovision-delay", type=float, default=0.3, metavar="SECONDS")
    parser.add_argument(
        "--aws-limits",
        action="store_true",
        help="throttle the API like AWS does (per-account token buckets; docs/facts.md)",
    )
    parser.add_argument(
        "--fork-server",
        action="store_true",
        help="start runner tasks by forking a pre-warmed process (fast; for benchmarks)",
    )
    parser.add_argument(
        "--image-command",
        action="append",
        default=[],
        metavar='IMAGE=["argv",...]',
        help="argv (JSON list) for IMAGE's containers that have no entryPoint/command",
    )
    args = parser.parse_args(argv)
    image_commands = {}
    for item in args.image_command:
        image, sep, command = item.partition("=")
        try:
            argv_list = json.loads(command) if sep else None
        except ValueError:
            argv_list = None
        if not isinstance(argv_list, list) or not all(isinstance(a, str) for a in argv_list):
            parser.error(f"--image-command {item!r}: expected IMAGE=[\"argv\", ...] (JSON)")
        image_commands[image] = argv_list
    return serve(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        ready_file=args.ready_file,
        write_conf=args.write_conf,
        provision_delay_s=args.provision_delay,
        deprovision_delay_s=args.deprovision_delay,
        aws_limits=args.aws_limits,
        fork_server=args.fork_server,
        image_commands=image_commands,
    )


if __name__ == "__main__":
    sys.exit(main())
