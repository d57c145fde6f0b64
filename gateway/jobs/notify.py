"""The completion notice of a job such as "resync all" (SPEC §5.6): a webhook and an e-mail.

`Notifier.send` delivers one event on every configured channel and reports a `Delivery` for
each; a delivery failure is logged and reported, never raised, because the job it announces
has already finished. It blocks: callers run it in a worker thread.

Webhook
    A POST of ``{"event": ..., "sent_at": ..., "summary": ...}`` as compact JSON with sorted
    keys, and the headers ``X-Idgate-Event``, ``X-Idgate-Timestamp`` (Unix seconds) and, when
    ``webhook_secret`` is set, ``X-Idgate-Signature``::

        X-Idgate-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>

    The timestamp is inside the signed bytes, so a captured request cannot be replayed later
    with a fresh timestamp. A receiver recomputes the HMAC over the raw body it received (not
    a re-serialization), compares with `hmac.compare_digest`, and refuses timestamps older than
    a few minutes. Each attempt is stamped and signed afresh, so a late retry is not refused as
    stale. Redirects are not followed: the signed body goes only to the configured URL.

SMTP
    One plain-text message to ``smtp_to``, upgraded with STARTTLS (system trust store) before
    any login when ``smtp_starttls`` is set; there is no fallback to a cleartext login.

Retry policy, the same for both channels
    Up to ``attempts`` attempts in all, waiting ``first_delay``, then 2x, 4x ... between them
    (at most `MAX_DELAY_SECONDS`). Retried: connection errors and timeouts; HTTP 5xx, 408 and
    429, where a numeric ``Retry-After`` (RFC 9110 §10.2.3) replaces the computed wait; SMTP
    4xx replies, which RFC 5321 §4.2.1 defines as transient. Final: any other HTTP status
    (including 3xx, as redirects are not followed) and SMTP 5xx replies. No jitter: there is
    one sender per event, so no herd of retries to spread.

Logs name the host, the attempt and a short reason; never the secret, the SMTP password, the
signature, or the webhook URL's path, query or user info (any of them may carry a token).
"""

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

import httpx

from gateway import __version__
from gateway.config import NotificationsConfig

log = logging.getLogger(__name__)

#: The longest wait between two attempts, whatever the backoff or a ``Retry-After`` asks.
MAX_DELAY_SECONDS = 60.0

# RFC 9110 §15.5.9 and §15.5.20: the server asks to be tried again (later).
_RETRYABLE_4XX = frozenset({408, 429})
# Server replies quoted in a Delivery or a log line are cut to this length.
_REASON_LIMIT = 200


@dataclass(frozen=True)
class Delivery:
    """How one channel's delivery of one event ended."""

    channel: str  # "webhook" or "email"
    delivered: bool
    attempts: int
    error: str | None  # a short reason when not delivered; never a secret or a URL


@dataclass(frozen=True)
class _Outcome:
    """What one attempt came to: delivered (no error), or a reason and whether to try again."""

    error: str | None = None
    retry: bool = False
    retry_after: float | None = None


_DELIVERED = _Outcome()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Idgate-Signature`` value of a webhook request: ``sha256=<hex>``.

    Parameters: the shared secret, the ``X-Idgate-Timestamp`` value and the raw request body.
    """
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class Notifier:
    """Sends completion notices on the channels a `NotificationsConfig` names.

    Parameters:
        config: the ``[notifications]`` table.
        attempts: attempts per channel in all, the first included.
        first_delay_seconds: the wait before the second attempt; it doubles after each.
        timeout_seconds: per network operation (connect, read, write).
        sleep, clock: the waiting and the Unix time, injected by tests.
        transport: the webhook's HTTP transport, injected by tests.
    Raises:
        ValueError: attempts below 1, a negative delay or a timeout that is not positive.
    """

    def __init__(
        self,
        config: NotificationsConfig,
        *,
        attempts: int = 5,
        first_delay_seconds: float = 1.0,
        timeout_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if attempts < 1 or first_delay_seconds < 0 or timeout_seconds <= 0:
            raise ValueError("need attempts >= 1, first_delay_seconds >= 0, timeout_seconds > 0")
        self._config = config
        self._attempts = attempts
        self._first_delay = first_delay_seconds
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._clock = clock
        self._transport = transport

    @property
    def configured(self) -> bool:
        """A webhook or an SMTP server is configured."""
        return self._config.webhook_url is not None or self._config.smtp_host is not None

    def send(self, event: str, summary: Mapping[str, Any]) -> list[Delivery]:
        """Deliver `event` (e.g. ``"resync.completed"``) with its `summary` on every channel.

        Blocks until each channel has delivered or given up, retrying as the module docstring
        says.

        Returns: one `Delivery` per configured channel, webhook first; empty when none is.
        Raises: nothing for a failed delivery; the `Delivery` and the log say what happened.
        """
        deliveries: list[Delivery] = []
        if self._config.webhook_url is not None:
            deliveries.append(self._webhook(self._config.webhook_url, event, summary))
        if self._config.smtp_host is not None:
            message = self._message(event, summary)
            where = f"{self._config.smtp_host}:{self._config.smtp_port}"
            deliveries.append(self._deliver("email", where, lambda: self._mail(message)))
        return deliveries

    # -- the retry loop, shared by both channels ------------------------------------------------

    def _deliver(self, channel: str, where: str, attempt_once: Callable[[], _Outcome]) -> Delivery:
        attempt = 0
        while True:
            attempt += 1
            outcome = attempt_once()
            if outcome.error is None:
                log.info("notify: %s to %s delivered (attempt %d)", channel, where, attempt)
                return Delivery(channel, delivered=True, attempts=attempt, error=None)
            if not outcome.retry or attempt == self._attempts:
                log.warning(
                    "notify: %s to %s attempt %d/%d failed: %s",
                    channel, where, attempt, self._attempts, outcome.error,
                )  # fmt: skip
                log.error(
                    "notify: %s to %s not delivered after %d attempt(s): %s",
                    channel, where, attempt, outcome.error,
                )  # fmt: skip
                return Delivery(channel, delivered=False, attempts=attempt, error=outcome.error)
            delay = self._delay(attempt, outcome.retry_after)
            log.warning(
                "notify: %s to %s attempt %d/%d failed: %s; retrying in %.1f s",
                channel, where, attempt, self._attempts, outcome.error, delay,
            )  # fmt: skip
            self._sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        wanted = self._first_delay * 2 ** (attempt - 1) if retry_after is None else retry_after
        return min(wanted, MAX_DELAY_SECONDS)

    # -- webhook --------------------------------------------------------------------------------

    def _webhook(self, url: str, event: str, summary: Mapping[str, Any]) -> Delivery:
        # One client for all attempts: loading the trust store costs tens of milliseconds.
        with httpx.Client(
            timeout=self._timeout,
            follow_redirects=False,
            # The system trust store, as for SMTP: where an operator puts a private CA.
            verify=ssl.create_default_context(),
            # Settings come from idgate's config only (STYLE 10): no proxy or .netrc
            # credentials picked up from the environment.
            trust_env=False,
            transport=self._transport,
        ) as client:
            return self._deliver(
                "webhook", _origin(url), lambda: self._post(client, url, event, summary)
            )

    def _post(
        self, client: httpx.Client, url: str, event: str, summary: Mapping[str, Any]
    ) -> _Outcome:
        timestamp = int(self._clock())
        body = _json_body(event, timestamp, summary)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"idgate/{__version__}",
            "X-Idgate-Event": event,
            "X-Idgate-Timestamp": str(timestamp),
        }
        if self._config.webhook_secret is not None:
            secret = self._config.webhook_secret.get_secret_value().encode()
            headers["X-Idgate-Signature"] = sign(secret, timestamp, body)
        try:
            # Streamed so the response body, which nothing needs, is never downloaded.
            with client.stream("POST", url, content=body, headers=headers) as response:
                return _http_outcome(response)
        except httpx.TimeoutException:
            return _Outcome("timed out", retry=True)
        except httpx.TransportError as exc:
            # httpcore's messages are socket-level ("[Errno 111] Connection refused"): no URL.
            return _Outcome(_short(f"connection failed: {_describe(exc)}"), retry=True)
        except httpx.InvalidURL:
            return _Outcome("invalid webhook URL")

    # -- e-mail ---------------------------------------------------------------------------------

    def _message(self, event: str, summary: Mapping[str, Any]) -> EmailMessage:
        # Built once for all attempts: the same Message-ID lets the receiving side drop a
        # duplicate when a retry follows a message that did arrive.
        config = self._config
        assert config.smtp_from is not None  # the config requires it with smtp_host
        sent_at = datetime.fromtimestamp(int(self._clock()), UTC)
        message = EmailMessage()
        message["From"] = config.smtp_from
        message["To"] = ", ".join(config.smtp_to)
        message["Subject"] = f"idgate: {event}"
        message["Date"] = format_datetime(sent_at)
        # The sender's domain, not make_msgid's default: that one asks DNS for our FQDN.
        message["Message-ID"] = make_msgid(domain=parseaddr(config.smtp_from)[1].rpartition("@")[2])
        message.set_content(_plain_text(event, sent_at, summary))
        return message

    def _mail(self, message: EmailMessage) -> _Outcome:
        config = self._config
        assert config.smtp_host is not None
        try:
            smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=self._timeout)
        except smtplib.SMTPResponseException as exc:  # a greeting other than 220
            return _smtp_reply(exc.smtp_code, exc.smtp_error)
        except OSError as exc:
            return _Outcome(_short(f"connection failed: {_describe(exc)}"), retry=True)
        try:
            if config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_username is not None and config.smtp_password is not None:
                smtp.login(config.smtp_username, config.smtp_password.get_secret_value())
            refused = smtp.send_message(message)
        # smtplib's exceptions are OSErrors: the specific ones must come first.
        except smtplib.SMTPResponseException as exc:
            return _smtp_reply(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            transient = all(400 <= code < 500 for code in codes)
            return _Outcome(f"all recipients refused (SMTP {codes[0]})", retry=transient)
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS or AUTH offered: config
            return _Outcome(_short(f"not supported by the server: {exc}"))
        except OSError as exc:  # refused, reset, timed out, disconnected, TLS handshake
            return _Outcome(_short(f"connection failed: {_describe(exc)}"), retry=True)
        finally:
            _quit(smtp)
        if refused:
            # Some recipients have it: a retry would send them a second copy.
            log.warning("notify: email refused for %d recipient(s)", len(refused))
        return _DELIVERED


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a log line may show of the webhook URL."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _json_body(event: str, timestamp: int, summary: Mapping[str, Any]) -> bytes:
    document = {
        "event": event,
        "sent_at": datetime.fromtimestamp(timestamp, UTC).isoformat(),
        "summary": summary,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def _http_outcome(response: httpx.Response) -> _Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return _DELIVERED
    error = f"HTTP {status}"
    if status >= 500 or status in _RETRYABLE_4XX:
        return _Outcome(error, retry=True, retry_after=_retry_after(response.headers))
    return _Outcome(error)


def _retry_after(headers: httpx.Headers) -> float | None:
    """A ``Retry-After`` in delay-seconds (RFC 9110 §10.2.3); None when absent or a date."""
    value = headers.get("Retry-After", "").strip()
    # isdigit alone accepts non-ASCII digits such as "²", which int() refuses.
    return float(value) if value.isascii() and value.isdigit() else None


def _smtp_reply(code: int, text: bytes | str) -> _Outcome:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    # RFC 5321 §4.2.1: 4yz is a transient failure, 5yz a permanent one. smtplib uses -1 for
    # a reply it could not read, which is a connection problem.
    return _Outcome(_short(f"SMTP {code}: {text}"), retry=code < 0 or 400 <= code < 500)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        # The outcome is already decided; only the socket is left to release.
        smtp.close()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _short(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= _REASON_LIMIT else reason[: _REASON_LIMIT - 3] + "..."


def _plain_text(event: str, sent_at: datetime, summary: Mapping[str, Any]) -> str:
    """The e-mail body: the event, when, and the summary as indented ``key: value`` lines.

    A list of mappings (the jobs of a resync) becomes ``- key: value`` items, one per entry.
    """
    lines = [f"idgate: {event}", f"sent at {sent_at.isoformat()}", ""]
    lines += _lines(summary, "")
    return "\n".join(lines) + "\n"


def _lines(value: Any, indent: str) -> list[str]:
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            if _nested(item):
                lines += [f"{indent}{key}:", *_lines(item, indent + "  ")]
            else:
                lines.append(f"{indent}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list | tuple):
        lines = []
        for item in value:
            if not _nested(item):
                lines.append(f"{indent}- {_scalar(item)}")
                continue
            # YAML-like: the first line of the item after the dash, the rest aligned under it.
            first, *rest = _lines(item, indent + "  ")
            lines += [f"{indent}- {first.lstrip()}", *rest]
        return lines
    return [f"{indent}{_scalar(value)}"]


def _nested(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and bool(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping | list | tuple):  # only empty ones get here
        return "(none)"
    return str(value)
