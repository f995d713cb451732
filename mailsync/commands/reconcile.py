"""`mailsync reconcile [--since YYYY-MM-DD] [--apply] [--format table|json]`.

Compares the agreements AWS reports through the Agreement API (as proposer)
with the CRM's `AWS_Agreement__c` records (`mailsync.crm.reconcile`) and
prints one line per difference: ``<agreement> missing``, ``<agreement>
unknown`` or ``<agreement> differs: <field> crm=<value> aws=<value>``, then a
summary line (stdout for the table, stderr for json) that also counts the CPPO
agreements the API cannot show to this account. ``--format json``: one JSON
object per line per difference (`agreement_id`, `difference`, `field`, `crm`,
`aws`).

AWS's side costs one SearchAgreements call per 50 agreements and one
DescribeAgreement per agreement whose lastUpdateTime moved since the poller
(or a reconcile --apply) last stored its snapshot. `--since`: only agreements
AWS updated on or after that day; a CRM record the listing lacks is then
looked up with DescribeAgreement before it is called unknown.

`--apply` submits the snapshots of missing and differing agreements to the
outbox (as the poller would: the merge rules decide, so a stale ACTIVE never
undoes a Cancelled), flushes the CRM, compares again and prints what remains.
Exit 0 when no difference remains, 1 when some remain (or AWS could not be
read completely), 2 for usage or configuration errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timedelta
from typing import Any

from mailsync import config
from mailsync.aws.agreement_api import error_code
from mailsync.aws.agreements_source import AgreementsSource, Snapshot
from mailsync.config import Settings
from mailsync.crm import mapping as m
from mailsync.crm.outbox import Outbox
from mailsync.crm.reconcile import Difference, differences
from mailsync.crm.sync import CrmSync, crm_mapping, make_backend
from mailsync.errors import ConfigError, InputError
from mailsync.event import Event
from mailsync.statedb import open_db
from mailsync.textsafe import escape

_NOT_FOUND = frozenset({"ResourceNotFoundException", "AccessDeniedException"})


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    if settings.agreements is None:
        raise ConfigError(
            "[source.agreements] is not configured; add the table (see README, "
            "AWS Agreement API) so reconcile can read the Agreement API"
        )
    since = _since(getattr(args, "since", None))
    conn = open_db(settings.state.path)
    try:
        source = AgreementsSource(settings.agreements, conn)
        aws, snaps, failed = _aws(source, since)
        crm = _crm(settings)
        if since is not None:
            failed += _look_up(source, aws, snaps, crm)
        found, hidden = differences(aws, crm, role=settings.agreements.role)
        shown, applied = found, 0
        if args.apply and found:
            applied = _apply(settings, conn, source, snaps, found)
            shown, hidden = differences(aws, _crm(settings), role=source.settings.role)
    finally:
        conn.close()
    _print(args.format, shown)
    counts = {
        kind: sum(d.difference == kind for d in shown)
        for kind in ("missing", "unknown", "differs")
    }
    summary = (
        f"reconcile: {len(aws)} agreements at AWS, {len(crm)} in the CRM; "
        f"{counts['missing']} missing, {counts['unknown']} unknown, "
        f"{counts['differs']} differences; {hidden} not visible to this account "
        "(CPPO agreements proposed by a channel partner)"
    )
    if args.apply:
        summary += f"; applied {applied} snapshots, {len(found)} differences before"
    if failed:
        summary += f"; {failed} agreements could not be read (see the log)"
    print(summary, file=sys.stdout if args.format == "table" else sys.stderr)
    return 1 if shown or failed else 0


def _since(text: str | None) -> str | None:
    """`AfterLastUpdateTime` for "updated on or after `text`" (a day)."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--since: expected YYYY-MM-DD, got {text!r}") from None
    start = datetime(day.year, day.month, day.day) - timedelta(seconds=1)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def _aws(
    source: AgreementsSource, after: str | None
) -> tuple[dict[str, Event], dict[str, Snapshot], int]:
    """Every listed agreement's snapshot (stored when current, else fetched)."""
    aws: dict[str, Event] = {}
    snaps: dict[str, Snapshot] = {}
    failed = 0
    for page in source.api.search_pages(source.filters(after)):
        for snap in source.snapshots(page):
            if snap.event is None or not snap.event.recognized:
                failed += 1
                print(
                    escape(
                        f"mailsync: {snap.agreement_id}: {snap.error or 'unusable'}"
                    ),
                    file=sys.stderr,
                )
                continue
            aws[snap.agreement_id] = snap.event
            snaps[snap.agreement_id] = snap
    return aws, snaps, failed


def _look_up(
    source: AgreementsSource,
    aws: dict[str, Event],
    snaps: dict[str, Snapshot],
    crm: dict[str, dict[str, Any]],
) -> int:
    """With --since: a CRM agreement the listing lacks may just be older."""
    failed = 0
    for agreement_id in sorted(set(crm) - set(aws)):
        try:
            event = source.fetch({"agreementId": agreement_id})
        except Exception as err:
            if error_code(err) in _NOT_FOUND:
                continue  # not AWS's (or not visible): differences() decides
            failed += 1
            print(
                escape(f"mailsync: {agreement_id}: {error_code(err)}"), file=sys.stderr
            )
            continue
        if event.recognized:
            aws[agreement_id] = event
            # No marker: a looked-up agreement is not stored as seen.
            snaps[agreement_id] = Snapshot(agreement_id, "", event, changed=True)
    return failed


def _crm(settings: Settings) -> dict[str, dict[str, Any]]:
    mapping = crm_mapping(settings)
    backend = make_backend(settings)
    try:
        rows = backend.fetch_all(mapping.obj(m.AGREEMENT))
    finally:
        backend.close()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        record = mapping.from_crm(m.AGREEMENT, row)
        key = record.get(m.EXTERNAL_ID[m.AGREEMENT])
        if isinstance(key, str) and key:
            out[key] = record
    return out


def _apply(
    settings: Settings,
    conn: Any,
    source: AgreementsSource,
    snaps: dict[str, Snapshot],
    found: list[Difference],
) -> int:
    """Snapshots of missing / differing agreements into the outbox, then a
    CRM flush; the number of snapshots submitted."""
    outbox = Outbox(conn)
    ids = sorted({d.agreement_id for d in found if d.agreement_id in snaps})
    for agreement_id in ids:
        snap = snaps[agreement_id]
        if snap.changed and snap.marker:
            source.commit(snap, outbox)  # stores the marker too
        elif snap.event is not None:
            outbox.submit(snap.event)
    sync = CrmSync(settings, conn)
    try:
        result = sync.flush()
    finally:
        sync.close()
    if result.pending:
        print(
            f"mailsync: {result.pending} CRM writes still pending"
            + (f" ({result.paused_reason})" if result.paused_reason else ""),
            file=sys.stderr,
        )
    return len(ids)


def _print(fmt: str, found: list[Difference]) -> None:
    for d in found:
        if fmt == "json":
            print(json.dumps(d.to_json()))
        else:
            print(d.line())
