"""Command line: argument parsing and the mapping of errors to exit codes.

Each subcommand lives in `mailsync.commands.<name>` as `run(args) -> int`.
The common options (``--config``, ``-v``, ``-q``) are accepted before and
after the command name; ``args.config`` is None when not given (the commands
then use `mailsync.config.locate`). Expected errors (`MailsyncError`) print
one line to stderr and exit with the error's code (2 for usage/configuration,
1 otherwise); no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from mailsync import __version__
from mailsync.crm.mapping_model import OBJECTS
from mailsync.errors import MailsyncError
from mailsync.textsafe import SafeWriter, escape

_FORMATS = ("table", "json", "csv")
#: the objects `records` shows (contract section 4)
OBJECT_NAMES = OBJECTS
_EXIT = "exit codes: 0 success, 1 runtime failure, 2 usage or configuration error"
#: distributions shown by --version: the libraries that decide behaviour
_LIBRARIES = (
    "imapclient",
    "mail-parser",
    "simple-salesforce",
    "APScheduler",
    "tenacity",
    "boto3",
    "dkimpy",
    "cryptography",
)

# (help, epilog) per subcommand: examples and what the exit codes mean there.
_HELP = {
    "parse": (
        "parse saved inputs to JSON Lines",
        "examples:\n  mailsync parse examples/inbox\n  mailsync parse saved/*.json"
        "\n  aws sqs receive-message ... | jq -r .Messages[0].Body | mailsync parse -"
        "\n\nPATH is a file, a folder (its files, recursively) or - (standard input)."
        "\nWith --config, [security] and [source.sqs] topic_arns decide SNS trust."
        "\nexit codes: 0 every path was read, 2 a path cannot be read",
    ),
    "run": (
        "run the daemon",
        "examples:\n  mailsync run --config /etc/mailsync/mailsync.toml\n"
        "  mailsync run --once\n\nOnly one daemon runs per state store; --once may run"
        " beside it.\nexit codes: 0 stopped cleanly / everything handled, 1 an input"
        " failed,\na record was refused or CRM writes stay pending, 2 configuration"
        " error,\nmissing secret, or another daemon holds the state store",
    ),
    "replay": (
        "push saved inputs through",
        "examples:\n  mailsync replay examples/inbox\n  mailsync replay --dry-run"
        " saved/offer.eml\n\nexit codes: 0 every record written, 1 the CRM refused a"
        " record or writes\nstay pending, 2 a path or the configuration is wrong",
    ),
    "check": (
        "validate config, reach services",
        "example:\n  mailsync check --config /etc/mailsync/mailsync.toml\n\n"
        "exit codes: 0 every check passed, 1 a check failed, 2 configuration error",
    ),
    "records": (
        "show the CRM records",
        "examples:\n  mailsync records\n  mailsync records aws_agreement__c --format"
        " csv\n\nOBJECT (any case): " + ", ".join(OBJECT_NAMES) + "\n" + _EXIT,
    ),
    "status": (
        "what the state store knows",
        "example:\n  mailsync status --config /etc/mailsync/mailsync.toml\n\n" + _EXIT,
    ),
    "reconcile": (
        "compare the Agreement API with the CRM",
        "examples:\n  mailsync reconcile\n  mailsync reconcile --since 2026-01-01"
        " --format json\n  mailsync reconcile --apply\n\nexit codes: 0 no difference"
        " remains, 1 some remain, 2 usage or\nconfiguration error",
    ),
    "import": (
        "load saved Seller Data Feed files",
        "examples:\n  mailsync import examples/sdds\n  mailsync import"
        " feeds/billingeventfeed_v1/year=2026/month=11/data.csv\n\nPATH is a folder"
        " laid out like the SDDS bucket, or a data.csv under its feed folder.\n"
        + _EXIT,
    ),
    "quarantine": (
        "quarantined inputs",
        "examples:\n  mailsync quarantine list\n  mailsync quarantine retry 12\n"
        "  mailsync quarantine retry --all\n  mailsync quarantine retry"
        " --dead-letters\n\n" + _EXIT,
    ),
}


class _VersionAction(argparse.Action):
    """``--version``: mailsync's version, Python's and the key libraries'."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: object) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help=cast("str | None", kw.get("help")),
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib import metadata

        lines = [f"mailsync {__version__}", f"python {sys.version.split()[0]}"]
        for name in _LIBRARIES:
            try:
                lines.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                lines.append(f"{name} not installed")
        print("\n".join(lines))
        parser.exit()


def _add(
    sub: Any, name: str, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    help_text, epilog = _HELP[name]
    return cast(
        argparse.ArgumentParser,
        sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        ),
    )

_MODULES = {"import": "import_feeds"}  #: commands whose name is a Python keyword


def build_parser() -> argparse.ArgumentParser:
    # Every option below is accepted before and after the subcommand. SUPPRESS:
    # a subparser must not reset what was given before its name (argparse
    # copies the subparser's defaults over the main parser's values). The
    # defaults are filled in after parsing (`_DEFAULTS`), never with
    # `set_defaults`: the parents' actions are shared objects, so a default set
    # on the main parser would reach every subparser and undo the SUPPRESS.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="config file (default: $MAILSYNC_CONFIG, else ./config/mailsync.toml"
        " when it exists, else /etc/mailsync/mailsync.toml)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log DEBUG lines (protocol steps) and say which config file is used",
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log warnings and errors only",
    )
    parser = argparse.ArgumentParser(
        prog="mailsync",
        description="AWS Marketplace seller notifications into CRM records.",
        epilog=_EXIT + "\nsee `mailsync COMMAND --help` for each command",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the versions and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _add(sub, "parse", common)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--require-trust",
        action="store_true",
        help="report every input that is not verified as rejected",
    )

    p = _add(sub, "run", common)
    p.add_argument("--once", action="store_true", help="one pass, then exit")

    p = _add(sub, "replay", common)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("--dry-run", action="store_true", help="print the CRM writes only")

    _add(sub, "check", common)

    p = _add(sub, "records", common)
    p.add_argument(
        "object",
        nargs="?",
        metavar="OBJECT",
        help="one of " + ", ".join(OBJECT_NAMES) + " (default: all)",
    )
    p.add_argument("--format", choices=_FORMATS, default="table")

    _add(sub, "status", common)

    p = _add(sub, "reconcile", common)
    p.add_argument("--since", metavar="YYYY-MM-DD", help="agreements updated since")
    p.add_argument(
        "--apply", action="store_true", help="submit AWS's snapshots to the CRM"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = _add(sub, "import", common)
    p.add_argument(
        "paths", nargs="+", metavar="PATH", type=Path, help="folders or data.csv files"
    )

    p = _add(sub, "quarantine", common)
    qsub = p.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    q = qsub.add_parser(
        "list",
        parents=[common],
        help="list quarantined inputs",
        description="List quarantined inputs and the records the CRM refused.",
        epilog="example:\n  mailsync quarantine list --format json\n\n" + _EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--format", choices=("table", "json"), default="table")
    q = qsub.add_parser(
        "retry",
        parents=[common],
        help="process again",
        description="Run quarantined inputs (or refused records) through again.",
        epilog="examples:\n  mailsync quarantine retry 12\n  mailsync quarantine"
        " retry --all\n  mailsync quarantine retry --dead-letters\n\nexit codes: 0"
        " every entry got a final outcome, 1 a temporary failure,\na record the CRM"
        " refused again or writes pending, 2 a wrong ID",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument(
        "id", nargs="?", metavar="ID", help="an ID from `mailsync quarantine list`"
    )
    q.add_argument("--all", action="store_true", help="retry every entry")
    q.add_argument(
        "--dead-letters",
        action="store_true",
        help="send the records the CRM refused again",
    )
    return parser


_DEFAULTS = {"config": None, "verbose": False, "quiet": False}


def _verbosity(args: argparse.Namespace) -> None:
    """Apply -v/-q to logging, and with -v say which config file is used."""
    from mailsync import config, log
    from mailsync.config import LogSettings

    if not (args.verbose or args.quiet):
        log.set_level_override(None)  # nothing left over from an earlier call
        return
    log.set_level_override("DEBUG" if args.verbose else "WARNING")
    log.configure(LogSettings())
    if args.verbose:
        path, origin = config.locate(args.config)
        state = "" if path.is_file() else ", which does not exist"
        print(f"mailsync: config file {path} (from {origin}{state})", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for key, value in _DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    _verbosity(args)
    name = _MODULES.get(args.command, args.command)
    module = importlib.import_module(f"mailsync.commands.{name}")
    # Whatever a command prints may quote strangers' text: every control
    # character but newline and tab reaches the terminal escaped.
    stdout = sys.stdout
    if not isinstance(stdout, SafeWriter):
        sys.stdout = SafeWriter(stdout)
    try:
        code: int = module.run(args)
    except MailsyncError as err:
        print(f"mailsync: {escape(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        sys.stdout = stdout
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
