"""The error taxonomy. The class of an error decides what happens to the input.

- `ConfigError`: fail at start-up (or on SIGHUP reload); exit 2; names the key.
- `InputError`: a command-line path or argument cannot be used; exit 2.
- `ParseError`: permanent for this input; quarantine with the reason, no retry.
- `AmbiguousMatchError`: two parsers claim one message (a bug); quarantine.
- `RejectedError`: untrusted input (bad signature, DKIM fail); never synced.
- `TransientError`: a source or the CRM is down; back off, retry, mark nothing.
- `CrmRecordError`: the CRM refused one record; dead-letter it, batch goes on.
- `StateError`: the state store cannot be written; stop, lose nothing.
  `CrmStoreError`: the same for the embedded CRM file, named as such.
"""

from __future__ import annotations


class MailsyncError(Exception):
    """Base of every expected error; its message is shown to the user as is."""

    exit_code = 1


class ConfigError(MailsyncError):
    """The configuration is invalid. The message names the key and the fix."""

    exit_code = 2


class InputError(MailsyncError):
    """A command-line input cannot be read or used."""

    exit_code = 2


class ParseError(MailsyncError):
    """An input claims to be a known type but is malformed (permanent)."""


class AmbiguousMatchError(ParseError):
    """More than one parser claims the same message."""


class RejectedError(MailsyncError):
    """An input failed an authenticity or policy check."""


class TransientError(MailsyncError):
    """A dependency is unavailable for now; retry later with backoff."""


class CrmRecordError(MailsyncError):
    """The CRM refused a record for a reason only an admin can fix."""

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class StateError(MailsyncError):
    """The state store cannot be read or written; the daemon must stop."""


class CrmStoreError(StateError):
    """The embedded CRM file (`[crm.sqlite] path`) is unusable (damaged, not
    a database, cannot be created); the message names that file, not the
    state store. The daemon stops; the outbox keeps the pending events."""


class CrmPausedError(TransientError):
    """The CRM refuses writes for a while (daily API limit); keep the outbox."""
