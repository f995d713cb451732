"""A real Dovecot IMAP server owned by the test suite (and the benchmark).

`Dovecot().start()` renders a config into a fresh 0755 directory under /tmp
(the IMAP processes run as `dovecot` and need +x on every parent, so pytest's
0700 tmp_path cannot be used), with a self-signed certificate for localhost,
a passwd-file with PLAIN passwords (an XOAUTH2 "token" is just a password to
Dovecot 2.3), `auth_failure_delay = 0` and free ports. `stop()`/`start()`
again restart it on the same ports and mail store, for outage tests.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient

CONF = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = dovecot-test-{pid}-{port}
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
mail_fsync = never
default_login_user = {login_u}
default_internal_user = {internal_u}
default_internal_group = {internal_g}
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_u} gid={mail_g} home={d}/mail/%u
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
"""

OAUTH_USER = "oauthuser@example.com"
OAUTH_TOKEN = "ya29.fake-access-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return shutil.which("dovecot") is not None and shutil.which("openssl") is not None


class Dovecot:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dovecot-test-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port, self.tls_port = free_port(), free_port()
        # Users are created up front: Dovecot notices a rewritten passwd-file by
        # its mtime, which can miss two changes within the same second.
        self.users: dict[str, str] = {OAUTH_USER: OAUTH_TOKEN}
        self.users.update({f"user{i}@example.com": "secret" for i in range(1, 301)})
        self.proc: subprocess.Popen[bytes] | None = None
        self.cert = f"{self.dir}/cert.pem"
        self._counter = 0

    def start(self, timeout: float = 10) -> Dovecot:
        d = self.dir
        for sub in ("run", "state", "mail"):
            os.makedirs(f"{d}/{sub}", exist_ok=True)
        if os.geteuid() == 0:
            login_u, internal_u, mail_u = "dovenull", "dovecot", "dovecot"
            pw = pwd.getpwnam(mail_u)
            os.chown(f"{d}/mail", pw.pw_uid, pw.pw_gid)
        else:
            login_u = internal_u = mail_u = pwd.getpwuid(os.geteuid()).pw_name

        def group(user: str) -> str:
            return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name

        if not os.path.exists(self.cert):
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-days", "2", "-subj", "/CN=localhost", "-addext",
                 "subjectAltName=DNS:localhost,IP:127.0.0.1",
                 "-keyout", f"{d}/key.pem", "-out", self.cert],
                check=True, capture_output=True,
            )  # fmt: skip
        self._write_passwd()
        self.conf = f"{d}/dovecot.conf"
        Path(self.conf).write_text(
            CONF.format(d=d, pid=os.getpid(), port=self.port, tls_port=self.tls_port,
                        login_u=login_u, internal_u=internal_u,
                        internal_g=group(internal_u), mail_u=mail_u,
                        mail_g=group(mail_u))
        )  # fmt: skip
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", self.conf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, killed as a whole
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dovecot exited: {err}\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise TimeoutError("dovecot did not start")

    def _write_passwd(self) -> None:
        lines = "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items())
        Path(f"{self.dir}/passwd").write_text(lines)

    def add_user(self) -> str:
        """A fresh, empty mailbox user (password "secret")."""
        self._counter += 1
        return f"user{self._counter}@example.com"

    def client(self, user: str) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(user, self.users[user])
        return c

    def log(self) -> str:
        try:
            return Path(f"{self.dir}/dovecot.log").read_text()
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and every process it started: the master leaves
        IDLE-ing imap processes running, which is not an outage."""
        if self.proc is not None:
            pgid = self.proc.pid
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
