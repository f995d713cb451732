"""Command line: argument parsing and the mapping of errors to exit codes.

Each subcommand lives in `mailsync.commands.<name>` as `run(args) -> int`.
Expected errors (`MailsyncError`) print one line to stderr and exit with the
error's code (2 for usage/configuration, 1 otherwise); no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from mailsync import __version__
from mailsync.errors import MailsyncError

_FORMATS = ("table", "json", "csv")
_MODULES = {"import": "import_feeds"}  #: commands whose name is a Python keyword


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        # SUPPRESS: a subcommand must not reset a --config given before it.
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="config file (default: $MAILSYNC_CONFIG, else config/mailsync.toml)",
    )
    parser = argparse.ArgumentParser(
        prog="mailsync",
        description="AWS Marketplace seller notifications into CRM records.",
        parents=[common],
    )
    parser.set_defaults(config=None)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "parse", parents=[common], help="parse saved inputs to JSON Lines"
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--require-trust",
        action="store_true",
        help="report every input that is not verified as rejected",
    )

    p = sub.add_parser("run", parents=[common], help="run the daemon")
    p.add_argument("--once", action="store_true", help="one pass, then exit")

    p = sub.add_parser("replay", parents=[common], help="push saved inputs through")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dry-run", action="store_true", help="print the CRM writes only")

    sub.add_parser("check", parents=[common], help="validate config, reach services")

    p = sub.add_parser("records", parents=[common], help="show the CRM records")
    p.add_argument("object", nargs="?", metavar="OBJECT")
    p.add_argument("--format", choices=_FORMATS, default="table")

    sub.add_parser("status", parents=[common], help="what the state store knows")

    p = sub.add_parser(
        "import", parents=[common], help="load saved Seller Data Feed files"
    )
    p.add_argument("paths", nargs="+", metavar="PATH", type=Path)

    p = sub.add_parser("quarantine", parents=[common], help="quarantined inputs")
    qsub = p.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    q = qsub.add_parser("list", parents=[common], help="list quarantined inputs")
    q.add_argument("--format", choices=("table", "json"), default="table")
    q = qsub.add_parser("retry", parents=[common], help="process again")
    q.add_argument("id", nargs="?", metavar="ID")
    q.add_argument("--all", action="store_true", help="retry every entry")
    q.add_argument(
        "--dead-letters",
        action="store_true",
        help="send the records the CRM refused again",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    name = _MODULES.get(args.command, args.command)
    module = importlib.import_module(f"mailsync.commands.{name}")
    try:
        code: int = module.run(args)
    except MailsyncError as err:
        print(f"mailsync: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
