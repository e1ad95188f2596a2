"""A real Dovecot IMAP server for the poller tests: one user, Maildir storage, STARTTLS and IMAPS.

Everything lives in a private directory: configuration, runtime sockets (base_dir), state, logs, mail.
Running as root, Dovecot drops its login processes to `dovenull` and the mail process to `nobody`, so
the directories they enter must be world-traversable (pytest's tmp_path is 0700, hence mkdtemp+chmod).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from tests.tls import make_self_signed

DOVECOT = "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "imap pass"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """`start()` runs Dovecot in the foreground of a child process; `stop()` ends it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="missiva-dovecot-"))
        self.port = _free_port()
        self.tls_port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.root / "cert.pem"))

    def _config(self) -> str:
        root = self.root
        if os.geteuid() == 0:
            login_user, internal_user, mail_user = "dovenull", "dovecot", "nobody"
        else:
            login_user = internal_user = mail_user = pwd.getpwuid(os.geteuid()).pw_name
        mail = pwd.getpwnam(mail_user)
        for sub in ("base", "state", "log", "mail"):
            (root / sub).mkdir()
        os.chown(root / "mail", mail.pw_uid, mail.pw_gid)
        tls = make_self_signed(root)
        cert, key = tls.cert, tls.key
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/base
state_dir = {root}/state
log_path = {root}/log/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={root}/mail/%u
}}
service anvil {{
  # No socket for the auth penalty: a failed login must not slow the next test's logins by seconds.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
"""

    def start(self) -> Dovecot:
        """Start the server and wait until both ports answer."""
        os.chmod(self.root, 0o755)  # noqa: S103 - Dovecot's unprivileged processes must enter it
        conf = self.root / "dovecot.conf"
        conf.write_text(self._config())
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        for port in (self.port, self.tls_port):
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), 0.2):
                        break
                except OSError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log = (self.root / "log" / "dovecot.log").read_text(errors="replace")[-2000:]
                        stderr = self.process.stderr
                        err = stderr.read().decode(errors="replace") if stderr else ""
                        self.stop()
                        raise RuntimeError(f"dovecot did not start: {err}\n{log}") from None
                    time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)
