"""Outage survival: the daemon keeps running while a service is away, says so
(`mailsync status`, the log, systemd's STATUS= on a real `$NOTIFY_SOCKET`),
and catches up with nothing lost when the service returns.

- the IMAP server (real Dovecot) restarted while the daemon IDLEs;
- the CRM (Salesforce emulator) unreachable: its port refuses connections;
- the CRM out of API calls (REQUEST_LIMIT_EXCEEDED): writes pause for
  `[crm] pause_seconds`, then resume;
- the SQS endpoint (moto) unreachable behind a proxy the test takes down.

Every wait polls a condition with a timeout; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ImapUser, start_mailsync, wait_for
from moto_server import MotoServer, shared_server
from sfemu import Emulator
from survival_helpers import (
    NotifyListener,
    TcpProxy,
    daemon_env,
    eventbridge_created,
    outbox_agreements,
    outbox_pending,
    seller_emails,
    status_of,
    survival_config,
)

PROCESSED = b"$MailsyncProcessed"


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.stop()


class Running:
    """`mailsync run` in the background; `finish()` SIGTERMs it and returns
    the log after checking the exit code."""

    def __init__(self, cfg: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[str] = start_mailsync(
            "run", "--config", str(cfg), log=log, env=env
        )

    def text(self) -> str:
        return self.log.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def finish(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        text = self.text()
        assert code == 0, text[-3000:]
        assert "Traceback" not in text
        return text


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.proc.kill()
            daemon.proc.wait()


def problem_shown(notify: NotifyListener, part: str) -> bool:
    """The latest STATUS= names a problem for `part` (e.g. "crm: ")."""
    statuses = notify.statuses()
    return bool(statuses) and f"; {part}" in statuses[-1]


def healthy_shown(notify: NotifyListener) -> bool:
    statuses = notify.statuses()
    return (
        bool(statuses)
        and statuses[-1].startswith("watching")
        and (";" not in statuses[-1])
    )


def marked(user: ImapUser) -> int:
    return sum(PROCESSED in f for f in user.flags().values())


def test_imap_server_restarted_mid_idle(
    tmp_path: Path, imap_user: ImapUser, notify: NotifyListener, running: list[Running]
) -> None:
    mail = seller_emails(3, seed=101)
    cfg = survival_config(tmp_path, imap=imap_user, imap_extra={"poll_interval": 3600})
    env = daemon_env(notify=notify)
    daemon = Running(cfg, env, tmp_path / "daemon.log")
    running.append(daemon)
    state = tmp_path / "state.sqlite3"
    wait_for(lambda: notify.has("READY=1"), 20, "READY=1")
    imap_user.append([mail[0].raw])  # delivered through IDLE (poll is 1 h)
    wait_for(lambda: marked(imap_user) == 1, 20, "the first message marked")

    imap_user.server.stop()
    # First "connection lost during IDLE", then each reconnect is refused.
    wait_for(lambda: problem_shown(notify, "imap:imap: IMAP connection lost"), 20,
             "STATUS= naming the lost connection")  # fmt: skip
    wait_for(lambda: problem_shown(notify, "imap:imap: cannot reach IMAP server"),
             20, "STATUS= naming the refused reconnect")  # fmt: skip
    wait_for(lambda: "last error: " in status_of(cfg, env)
             and "cannot reach IMAP server" in status_of(cfg, env), 20,
             "status naming the IMAP error")  # fmt: skip
    assert daemon.alive()
    imap_user.server.start()  # same port, same mail store; nothing appended yet
    wait_for(lambda: healthy_shown(notify), 30, "STATUS= recovered")
    imap_user.append([m.raw for m in mail[1:]])
    wait_for(lambda: marked(imap_user) == 3, 30, "the mail sent after the restart")

    assert outbox_agreements(state) == sorted(m.agreement_id for m in mail)
    text = daemon.finish()
    assert "retrying in" in text and text.count("INFO connected") >= 2
    assert notify.has("STOPPING=1")


def test_crm_unreachable_keeps_reading_and_catches_up(
    tmp_path: Path,
    imap_user: ImapUser,
    emulator: Emulator,
    notify: NotifyListener,
    running: list[Running],
) -> None:
    mail = seller_emails(5, seed=102)
    proxy = TcpProxy(int(emulator.url.rsplit(":", 1)[1]))
    cfg = survival_config(
        tmp_path,
        imap=imap_user,
        # This test is about the CRM side: reading must go on while the CRM is
        # down. IDLE is renewed every 5 s so that a missed IDLE wake-up (seen
        # once under full-suite load; the IDLE tests cover wake-ups) cannot
        # stand in for a reading stall.
        imap_extra={"poll_interval": 3600, "idle_renew_seconds": 5},
        salesforce=(proxy.url, emulator.username),
    )
    env = daemon_env(sf=(emulator.password, emulator.security_token), notify=notify)
    state = tmp_path / "state.sqlite3"
    imap_user.append([m.raw for m in mail[:2]])
    daemon = Running(cfg, env, tmp_path / "daemon.log")
    running.append(daemon)
    try:
        wait_for(lambda: len(emulator.records("AWS_Agreement__c")) == 2, 30,
                 "the first two agreements in the CRM")  # fmt: skip
        wait_for(lambda: outbox_pending(state) == 0, 30, "the first flush recorded")

        proxy.down()  # the CRM's port now refuses connections
        imap_user.append([m.raw for m in mail[2:]])
        wait_for(lambda: marked(imap_user) == 5, 30, "mail read during the outage")
        # Marked only once durable: every marked message is in the outbox.
        assert outbox_agreements(state) == sorted(m.agreement_id for m in mail)
        wait_for(lambda: problem_shown(notify, "crm: writes paused, 3 pending"), 60,
                 "STATUS= naming the CRM outage")  # fmt: skip
        status = status_of(cfg, env)
        assert "  pending: 3\n" in status
        assert "last_error: " in status and "last_error: -" not in status
        assert "WARNING crm flush paused pending=3" in daemon.text()
        assert outbox_pending(state) == 3 and daemon.alive()
    finally:
        proxy.up()
    wait_for(lambda: len(emulator.records("AWS_Agreement__c")) == 5, 60,
             "the backlog written once the CRM is back")  # fmt: skip
    wait_for(lambda: healthy_shown(notify), 30, "STATUS= recovered")
    assert outbox_pending(state) == 0
    assert sorted(
        a["Agreement_ID__c"] for a in emulator.records("AWS_Agreement__c")
    ) == (sorted(m.agreement_id for m in mail))
    assert "  pending: 0\n" in status_of(cfg, env)
    daemon.finish()
    proxy.down()


def test_crm_api_limit_pauses_then_resumes(
    tmp_path: Path,
    imap_user: ImapUser,
    emulator: Emulator,
    notify: NotifyListener,
    running: list[Running],
) -> None:
    mail = seller_emails(4, seed=103)
    cfg = survival_config(
        tmp_path,
        imap=imap_user,
        imap_extra={"poll_interval": 3600},
        salesforce=(emulator.url, emulator.username),
        pause_seconds=6,
    )
    env = daemon_env(sf=(emulator.password, emulator.security_token), notify=notify)
    emulator.faults.limit_reached = True
    imap_user.append([m.raw for m in mail])
    daemon = Running(cfg, env, tmp_path / "daemon.log")
    running.append(daemon)
    wait_for(lambda: problem_shown(notify, "crm: writes paused, 4 pending"), 30,
             "STATUS= naming the pause")  # fmt: skip
    assert "REQUEST_LIMIT_EXCEEDED" in notify.statuses()[-1]
    emulator.faults.limit_reached = False  # the org's daily allowance is back
    status = status_of(cfg, env)
    assert (
        "paused_reason: Salesforce API limit reached (REQUEST_LIMIT_EXCEEDED" in status
    )
    assert "paused_until: -" not in status
    assert "WARNING crm flush paused pending=4" in daemon.text()
    assert marked(imap_user) == 4  # reading and marking go on meanwhile
    wait_for(lambda: len(emulator.records("AWS_Agreement__c")) == 4, 60,
             "the writes after the pause")  # fmt: skip
    # Paused means paused: the one refused call, no retries during the pause.
    assert emulator.calls["limit_exceeded"] == 1
    wait_for(lambda: healthy_shown(notify), 30, "STATUS= recovered")
    assert "paused_until: -" in status_of(cfg, env)
    daemon.finish()


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return shared_server()  # no reset: a fresh queue is enough isolation


def test_sqs_endpoint_down_then_back(
    tmp_path: Path, moto: MotoServer, notify: NotifyListener, running: list[Running]
) -> None:
    queue = moto.queue()
    sqs = moto.client("sqs")
    proxy = TcpProxy(int(moto.url.rsplit(":", 1)[1]))
    cfg = survival_config(tmp_path, sqs=(queue, proxy.url))
    env = daemon_env(notify=notify)
    state = tmp_path / "state.sqlite3"
    daemon = Running(cfg, env, tmp_path / "daemon.log")
    running.append(daemon)
    try:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(eventbridge_created(1)))
        wait_for(lambda: len(outbox_agreements(state)) == 1, 30, "the first event")

        proxy.down()
        # Sent while the daemon cannot reach the queue. A long poll that moto
        # was still serving when the proxy cut it may take one of them in
        # flight: it comes back after the visibility timeout (5 s here).
        for n in (2, 3):
            sqs.send_message(
                QueueUrl=queue, MessageBody=json.dumps(eventbridge_created(n))
            )
        wait_for(lambda: problem_shown(notify, "sqs: "), 60, "STATUS= SQS outage")
        assert "SQS" in notify.statuses()[-1]
        wait_for(lambda: "last error: SQS" in status_of(cfg, env), 20,
                 "status naming the SQS error")  # fmt: skip
        assert daemon.alive() and len(outbox_agreements(state)) == 1
    finally:
        proxy.up()
    wait_for(lambda: len(outbox_agreements(state)) == 3, 90, "the catch-up")
    wait_for(lambda: healthy_shown(notify), 30, "STATUS= recovered")

    def queue_counts() -> dict[str, str]:
        return dict(
            sqs.get_queue_attributes(
                QueueUrl=queue,
                AttributeNames=["ApproximateNumberOfMessages",
                                "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
        )  # fmt: skip

    # The delete follows the outbox commit, and a message a cut long poll took
    # in flight (or whose delete was cut) comes back after the 5 s visibility
    # timeout, is recognized as a duplicate and deleted: wait for that.
    empty = {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    wait_for(lambda: queue_counts() == empty, 30, "the queue to drain")
    assert outbox_agreements(state) == sorted(
        eventbridge_created(n)["detail"]["agreement"]["id"] for n in (1, 2, 3)
    )
    text = daemon.finish()
    assert "retrying in" in text
    proxy.down()


def test_mail_announced_inside_a_search_answer_is_not_left_for_idle_renewal(
    tmp_path: Path, imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the restart test: a message appended while the pass runs its
    SEARCH is announced by an untagged EXISTS inside the SEARCH answer, which
    imaplib files away; Dovecot does not repeat it when IDLE starts, so the
    daemon waited for the next IDLE renewal (9 minutes by default)."""
    from test_imap_sync import make_source

    source, outbox, _ = make_source(tmp_path, imap_user, monkeypatch)
    stop = threading.Event()
    assert source.run_pass(outbox, stop).fetched == 0
    imap_user.append([seller_emails(1, seed=104)[0].raw])
    assert source.client is not None
    source.client.search(["UID", "1:*"])  # its answer carries "* 1 EXISTS"
    waited = threading.Thread(target=source.wait_for_input, args=(600, stop))
    waited.start()
    try:
        wait_for(lambda: not waited.is_alive(), 15, "the wait to end at once")
    finally:
        stop.set()
        waited.join()
    stop.clear()
    assert source.run_pass(outbox, stop).synced == 1
    source.close()
