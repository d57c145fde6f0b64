"""gateway.jobs.notify: the completion notice, against a real HTTP receiver and a real SMTP server.

Both run on loopback in a thread: `http.server` records every webhook request and answers
from a script; aiosmtpd records every message it accepts. `sleep` and `clock` are injected, so
retries cost no time and the signed timestamp is known.
"""

import email
import email.policy
import errno
import hashlib
import hmac
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import gateway
from gateway.config import NotificationsConfig
from gateway.jobs.notify import Delivery, Notifier, sign
from tests.ldapproxy.gateway_process import refusing_port
from tests.servers.tls import shared_tls_files

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# A fraction of a second on the clock: the timestamp header is its whole seconds.
CLOCK = NOW.timestamp() + 0.7
# Distinctive values: if one shows up in a log line or a Delivery, a secret leaked.
LEAK = "Plugh-S3cret-9Z"
SECRET = f"hook-{LEAK}"
SUMMARY = {
    "kind": "resync_all",
    "started_at": "2026-11-22T11:58:00+00:00",
    "jobs": [
        {"source": "corp", "state": "done", "read": 120, "failed": 0},
        {"source": "ad", "state": "failed", "read": 7, "failed": 7},
    ],
}


def started(make: Callable[[int], Controller]) -> Controller:
    """An aiosmtpd server on a free port: it binds the port itself (it cannot be given a
    socket or port 0), so a port probed here may be taken before it binds. Then the start is
    tried once more on another port, and says so, rather than fail the test by chance."""
    for attempt in (1, 2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        controller = make(port)
        try:
            controller.start()
            return controller
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == 2:
                raise
            print(f"SMTP test server: port {port} was taken meanwhile; trying another")
    raise AssertionError("unreachable")


class Sleeps(list[float]):
    """The injected `sleep`: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def notifier(settings: dict[str, Any], sleeps: Sleeps | None = None, **kwargs: Any) -> Notifier:
    return Notifier(
        NotificationsConfig.model_validate(settings),
        sleep=Sleeps() if sleeps is None else sleeps,
        clock=lambda: CLOCK,
        **kwargs,
    )


# -- the webhook receiver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: HTTPMessage
    body: bytes


class Receiver:
    """An HTTP server that records each POST and answers with the next scripted reply."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        # (status, headers) per request, in order; 200 once the script is used up.
        self.replies: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(self.path, self.headers, body))
                status, headers = receiver.replies.pop(0) if receiver.replies else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # A short poll interval: shutdown() waits for the next poll, 0.5 s by default.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/idgate"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_webhook_is_delivered_once_signed_over_timestamp_and_body(receiver):
    sleeps = Sleeps()
    deliveries = notifier({"webhook_url": receiver.url, "webhook_secret": SECRET}, sleeps).send(
        "resync.completed", SUMMARY
    )

    assert deliveries == [Delivery("webhook", delivered=True, attempts=1, error=None)]
    assert sleeps == []
    [request] = receiver.requests
    assert request.path == "/hooks/idgate"
    timestamp = int(CLOCK)
    assert request.headers["X-Idgate-Timestamp"] == str(timestamp)
    assert request.headers["X-Idgate-Event"] == "resync.completed"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"idgate/{gateway.__version__}"
    document = json.loads(request.body)
    assert document == {
        "event": "resync.completed",
        "sent_at": "2026-11-22T12:00:00+00:00",
        "summary": SUMMARY,
    }
    assert request.body == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    signature = request.headers["X-Idgate-Signature"]
    assert signature == sign(SECRET.encode(), timestamp, request.body)
    # What a receiver computes by hand, so `sign` is checked against the documented scheme.
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert hmac.compare_digest(signature, f"sha256={expected.hexdigest()}")
    # The timestamp is signed: replaying the body under a later timestamp does not verify.
    assert signature != sign(SECRET.encode(), timestamp + 60, request.body)


def test_webhook_without_a_secret_is_not_signed(receiver):
    [delivery] = notifier({"webhook_url": receiver.url}).send("resync.completed", {"n": 1})

    assert delivery.delivered
    assert "X-Idgate-Signature" not in receiver.requests[0].headers


def test_values_json_cannot_encode_are_sent_as_text(receiver):
    notifier({"webhook_url": receiver.url}).send("resync.completed", {"finished_at": NOW})

    summary = json.loads(receiver.requests[0].body)["summary"]
    assert summary == {"finished_at": str(NOW)}


def test_5xx_is_retried_with_exponential_backoff(receiver):
    receiver.replies = [(503, {}), (503, {})]
    sleeps = Sleeps()

    [delivery] = notifier({"webhook_url": receiver.url}, sleeps).send("resync.completed", {})

    assert delivery == Delivery("webhook", delivered=True, attempts=3, error=None)
    assert sleeps == [1.0, 2.0]
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 504, 408, 429])
def test_transient_statuses_are_retried(receiver, status):
    receiver.replies = [(status, {})]

    [delivery] = notifier({"webhook_url": receiver.url}).send("resync.completed", {})

    assert (delivery.delivered, delivery.attempts) == (True, 2)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 302, 307])
def test_other_statuses_are_final(receiver, status):
    # The Location makes the 3xx rows a real redirect: it must not be followed either.
    receiver.replies = [(status, {"Location": "/elsewhere"})]
    sleeps = Sleeps()

    [delivery] = notifier({"webhook_url": receiver.url}, sleeps).send("resync.completed", {})

    assert delivery == Delivery("webhook", delivered=False, attempts=1, error=f"HTTP {status}")
    assert sleeps == []
    assert [request.path for request in receiver.requests] == ["/hooks/idgate"]


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("3600", 60.0),  # capped: a receiver cannot park the worker for an hour
        ("Sun, 22 Nov 2026 12:05:00 GMT", 1.0),  # not delay-seconds: the backoff applies
        ("2.5", 1.0),  # RFC 9110 delay-seconds are whole numbers
    ],
)
def test_retry_after_replaces_the_backoff(receiver, retry_after, waited):
    receiver.replies = [(429, {"Retry-After": retry_after})]
    sleeps = Sleeps()

    [delivery] = notifier({"webhook_url": receiver.url}, sleeps).send("resync.completed", {})

    assert (delivery.delivered, delivery.attempts) == (True, 2)
    assert sleeps == [waited]


def test_backoff_is_capped_too(receiver):
    receiver.replies = [(503, {})] * 3
    sleeps = Sleeps()

    notifier({"webhook_url": receiver.url}, sleeps, first_delay_seconds=25.0).send("e", {})

    assert sleeps == [25.0, 50.0, 60.0]


def test_attempts_run_out(receiver):
    receiver.replies = [(503, {})] * 10
    sleeps = Sleeps()

    [delivery] = notifier({"webhook_url": receiver.url}, sleeps, attempts=3).send("e", {})

    assert delivery == Delivery("webhook", delivered=False, attempts=3, error="HTTP 503")
    assert sleeps == [1.0, 2.0]
    assert len(receiver.requests) == 3


def test_connection_refused_is_retried_until_attempts_run_out():
    sleeps = Sleeps()
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}/hook"

        [delivery] = notifier({"webhook_url": url}, sleeps, attempts=3).send("e", {})

    assert (delivery.delivered, delivery.attempts) == (False, 3)
    assert delivery.error is not None
    assert "connection" in delivery.error
    assert sleeps == [1.0, 2.0]


def test_a_receiver_that_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"

        [delivery] = notifier({"webhook_url": url}, attempts=2, timeout_seconds=0.05).send("e", {})

    assert delivery == Delivery("webhook", delivered=False, attempts=2, error="timed out")


def test_logs_and_deliveries_never_show_the_secret_or_the_url_credentials(receiver, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.jobs.notify")
    receiver.replies = [(503, {}), (400, {})]
    url = f"http://hook-user:pass-{LEAK}@127.0.0.1:{receiver.port}/t-{LEAK}/hook?token=q-{LEAK}"

    deliveries = notifier({"webhook_url": url, "webhook_secret": SECRET}).send("e", {})

    # The receiver did get the full URL: only the logs leave parts out.
    assert receiver.requests[0].path == f"/t-{LEAK}/hook?token=q-{LEAK}"
    signature = receiver.requests[0].headers["X-Idgate-Signature"]
    assert "attempt 1/5 failed: HTTP 503" in caplog.text
    assert "not delivered after 2 attempt(s): HTTP 400" in caplog.text
    assert f"http://127.0.0.1:{receiver.port}" in caplog.text
    assert LEAK not in caplog.text
    assert "hook-user" not in caplog.text
    assert signature.removeprefix("sha256=") not in caplog.text
    assert LEAK not in repr(deliveries)


# -- the SMTP server ---------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler: keeps each message it accepts; answers DATA from a script."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.replies: list[str] = []  # DATA replies, in order; "250 OK" once used up
        self.logins: list[LoginPassword] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.replies.pop(0) if self.replies else "250 OK"
        if reply.startswith("250"):
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.tls.append(session.ssl is not None)
        return reply

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.logins.append(auth_data)
        good = auth_data == LoginPassword(b"idgate", f"smtp-{LEAK}".encode())
        return AuthResult(success=good, handled=False)


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_port(mailbox) -> Iterator[int]:
    """A plain SMTP server (no STARTTLS, no AUTH)."""
    controller = started(lambda port: Controller(mailbox, hostname="127.0.0.1", port=port))
    yield controller.port
    controller.stop()


@pytest.fixture
def smtp_tls_port(mailbox) -> Iterator[int]:
    """An SMTP server that requires STARTTLS, then AUTH, with the throwaway certificate."""
    files = shared_tls_files()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    controller = started(
        lambda port: Controller(
            mailbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            authenticator=mailbox.authenticate,
            auth_required=True,
        )
    )
    yield controller.port
    controller.stop()


def mail_settings(port: int, **more: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_from": "idgate <idgate@example.org>",
        "smtp_to": ["ops@example.org", "Second Admin <admin2@example.org>"],
        "smtp_starttls": False,
        **more,
    }


def test_email_arrives_with_headers_and_a_readable_summary(mailbox, smtp_port):
    [delivery] = notifier(mail_settings(smtp_port)).send("resync.completed", SUMMARY)

    assert delivery == Delivery("email", delivered=True, attempts=1, error=None)
    [message] = mailbox.messages
    assert message["From"] == "idgate <idgate@example.org>"
    assert message["To"] == "ops@example.org, Second Admin <admin2@example.org>"
    assert message["Subject"] == "idgate: resync.completed"
    assert message["Message-ID"].endswith("@example.org>")
    assert mailbox.envelopes == [("idgate@example.org", ["ops@example.org", "admin2@example.org"])]
    body = message.get_content().replace("\r\n", "\n")  # CRLF on the wire (RFC 5321)
    assert body == (
        "idgate: resync.completed\n"
        "sent at 2026-11-22T12:00:00+00:00\n"
        "\n"
        "kind: resync_all\n"
        "started_at: 2026-11-22T11:58:00+00:00\n"
        "jobs:\n"
        "  - source: corp\n"
        "    state: done\n"
        "    read: 120\n"
        "    failed: 0\n"
        "  - source: ad\n"
        "    state: failed\n"
        "    read: 7\n"
        "    failed: 7\n"
    )


def test_email_transient_reply_is_retried(mailbox, smtp_port):
    mailbox.replies = ["451 4.3.0 Try again later"]
    sleeps = Sleeps()

    [delivery] = notifier(mail_settings(smtp_port), sleeps).send("resync.completed", {})

    assert delivery == Delivery("email", delivered=True, attempts=2, error=None)
    assert sleeps == [1.0]
    assert len(mailbox.messages) == 1


def test_email_permanent_reply_is_final(mailbox, smtp_port):
    mailbox.replies = ["554 5.6.0 Rejected"]
    sleeps = Sleeps()

    [delivery] = notifier(mail_settings(smtp_port), sleeps).send("resync.completed", {})

    assert delivery == Delivery(
        "email", delivered=False, attempts=1, error="SMTP 554: 5.6.0 Rejected"
    )
    assert sleeps == []


def test_email_connection_refused_is_retried_until_attempts_run_out():
    sleeps = Sleeps()

    with refusing_port() as port:
        [delivery] = notifier(mail_settings(port), sleeps, attempts=3).send("e", {})

    assert (delivery.delivered, delivery.attempts) == (False, 3)
    assert delivery.error is not None
    assert "connection" in delivery.error
    assert sleeps == [1.0, 2.0]


def test_starttls_required_but_not_offered_is_final_and_sends_nothing(mailbox, smtp_port):
    settings = mail_settings(smtp_port, smtp_starttls=True)

    [delivery] = notifier(settings).send("e", {})

    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert "STARTTLS" in delivery.error
    assert mailbox.messages == []


def test_starttls_then_login(mailbox, smtp_tls_port, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.jobs.notify")
    # ssl.create_default_context() reads the trust store OpenSSL is pointed at.
    monkeypatch.setenv("SSL_CERT_FILE", str(shared_tls_files().ca_file))
    settings = mail_settings(
        smtp_tls_port,
        smtp_starttls=True,
        smtp_username="idgate",
        smtp_password=f"smtp-{LEAK}",
    )

    [delivery] = notifier(settings).send("resync.completed", SUMMARY)

    assert delivery == Delivery("email", delivered=True, attempts=1, error=None)
    assert mailbox.tls == [True]
    assert mailbox.logins == [LoginPassword(b"idgate", f"smtp-{LEAK}".encode())]
    assert LEAK not in caplog.text


def test_starttls_with_an_untrusted_certificate_sends_nothing(mailbox, smtp_tls_port):
    # No SSL_CERT_FILE: the throwaway CA is not in the system trust store.
    settings = mail_settings(
        smtp_tls_port, smtp_starttls=True, smtp_username="idgate", smtp_password=f"smtp-{LEAK}"
    )

    [delivery] = notifier(settings, attempts=1).send("e", {})

    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.error
    assert mailbox.logins == []
    assert mailbox.messages == []


def test_wrong_smtp_password_is_final(mailbox, smtp_tls_port, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(shared_tls_files().ca_file))
    settings = mail_settings(
        smtp_tls_port, smtp_starttls=True, smtp_username="idgate", smtp_password="wrong"
    )
    sleeps = Sleeps()

    [delivery] = notifier(settings, sleeps).send("e", {})

    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert delivery.error.startswith("SMTP 535")
    assert sleeps == []


# -- both, and neither -------------------------------------------------------------------------


def test_every_configured_channel_gets_one_delivery_webhook_first(receiver, mailbox, smtp_port):
    settings = {"webhook_url": receiver.url, **mail_settings(smtp_port)}

    deliveries = notifier(settings).send("resync.completed", SUMMARY)

    assert [(d.channel, d.delivered) for d in deliveries] == [("webhook", True), ("email", True)]
    assert len(receiver.requests) == len(mailbox.messages) == 1


def test_nothing_configured_sends_nothing():
    unconfigured = notifier({})

    assert not unconfigured.configured
    assert unconfigured.send("resync.completed", SUMMARY) == []


@pytest.mark.parametrize(
    "settings", [{"webhook_url": "https://hooks.example.org/x"}, mail_settings(2525)]
)
def test_either_channel_makes_it_configured(settings):
    assert notifier(settings).configured


@pytest.mark.parametrize(
    "bad", [{"attempts": 0}, {"first_delay_seconds": -1.0}, {"timeout_seconds": 0.0}]
)
def test_nonsense_retry_settings_are_refused(bad):
    with pytest.raises(ValueError, match="attempts"):
        notifier({}, **bad)
