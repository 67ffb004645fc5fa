"""``python -m covalent_ecs_executor.sandbox``: a sandbox in the foreground.

Used by ``SandboxProcess`` (``--ready-file``); ``covalent-ecs sandbox`` is the
user-facing command.
"""

from __future__ import annotations

import argparse
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
        help="throttle the API like AWS does (per-account token buckets; NOTES.md)",
    )
    args = parser.parse_args(argv)
    return serve(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        ready_file=args.ready_file,
        write_conf=args.write_conf,
        provision_delay_s=args.provision_delay,
        deprovision_delay_s=args.deprovision_delay,
        aws_limits=args.aws_limits,
    )


if __name__ == "__main__":
    sys.exit(main())
