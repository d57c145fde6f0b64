"""A small typed client of a running gateway's admin API (docs/admin-api.md).

One method per route the CLI uses; each returns the API's JSON document as a dict, unchanged,
so `--json` can print exactly what the gateway said. Every failure is one exception:

    AdminError(status, code, detail, field=None)
      status 0, code "unreachable"          no connection: refused, DNS, TLS, reset
      status 0, code "timeout"              connected, but no answer within `timeout`
      status N, code from the body          the API's {"error", "detail"[, "field", ...]}
      status N, code "unexpected_response"  an answer that is not the admin API's (a proxy's
                                            HTML page, a gateway without the admin API)

Messages name the gateway's URL (without any user:password part) and never the token: it
lives only in the `Authorization` header of the underlying `httpx.Client`.

Blocking: every method does one HTTP request on the calling thread.
"""

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from gateway import __version__

#: A JSON object as the API answers it.
JsonObject = dict[str, Any]


class AdminError(Exception):
    """The admin API refused or failed a request, or could not be reached.

    Attributes:
        status: the HTTP status; 0 when no answer came.
        code: the API's `error` code, or "unreachable" / "timeout" / "unexpected_response".
        detail: human text, fit to print.
        field: the input the API found invalid, when it says.
        extra: the error body's other members (`source_status`, `job`, ...).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        field: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.extra: dict[str, Any] = dict(extra or {})

    def document(self) -> JsonObject:
        """The error as the API's error body (built here when the API gave none)."""
        body: JsonObject = {"error": self.code, "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        return {**body, **self.extra}

    def __repr__(self) -> str:
        return f"AdminError({self.status}, {self.code!r}, {self.detail!r}, field={self.field!r})"


def display_url(url: str | httpx.URL) -> str:
    """`url` without user info, query or fragment: what a message may show."""
    try:
        parsed = httpx.URL(str(url))
    except httpx.InvalidURL:
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}".rstrip("/")


class AdminClient:
    """The admin API of one gateway, as one administrator (the token's)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """
        Parameters:
            base_url: the gateway's HTTP front, e.g. http://127.0.0.1:8080 (a path prefix
                in front of /admin is kept, for a reverse proxy).
            token: an `[[admins]]` token.
            timeout: seconds for connecting and for each read.
            transport: replaces the network (tests serve a fake API through it).
        """
        self.base_url = base_url.rstrip("/")
        self._shown = display_url(self.base_url)
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"idgate-cli/{__version__}",
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    # -- who -----------------------------------------------------------------------------

    def whoami(self) -> JsonObject:
        """`{"name", "role"}` of the token's administrator."""
        return self._call("GET", "/admin/whoami")

    # -- jobs ----------------------------------------------------------------------------

    def jobs(
        self, *, source: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> JsonObject:
        """`{"jobs": [Job]}`, newest first."""
        return self._call(
            "GET", "/admin/jobs", params={"source": source, "kind": kind, "limit": limit}
        )

    def start_job(self, kind: str, source: str | None = None) -> JsonObject:
        """Start a `bulk`, `refresh` (both need `source`) or `cleanup` job: the new `Job`.

        Raises: AdminError `job_running` (409) when one of that source, or a cleanup, runs.
        """
        return self._call("POST", "/admin/jobs", json={"kind": kind, "source": source})

    def job(
        self,
        job_id: int,
        *,
        details: bool = False,
        category: str | None = None,
        limit: int | None = None,
    ) -> JsonObject:
        """A `Job`; with `details`, its details lists (one `category`, or all)."""
        params: dict[str, Any] = {}
        if details:
            params = {"details": "true", "category": category, "limit": limit}
        return self._call("GET", f"/admin/jobs/{int(job_id)}", params=params)

    def stop_job(self, job_id: int) -> JsonObject:
        """Ask a running job to stop (what it wrote stays): the `Job`, now `stopping`.

        Raises: AdminError `conflict` (409) when it has ended already.
        """
        return self._call("POST", f"/admin/jobs/{int(job_id)}/stop")

    def confirm_job(self, job_id: int) -> JsonObject:
        """Disable exactly the users a held job holds: the `Job`, running again.

        Raises: AdminError `conflict` (409) when it is not held.
        """
        return self._call("POST", f"/admin/jobs/{int(job_id)}/confirm")

    def discard_job(self, job_id: int) -> JsonObject:
        """Drop a held job's list: the `Job`, now `discarded`.

        Raises: AdminError `conflict` (409) when it is not held.
        """
        return self._call("POST", f"/admin/jobs/{int(job_id)}/discard")

    def job_holds(self, job_id: int, *, after: int = 0, limit: int = 1000) -> JsonObject:
        """A page of the users a held job would disable: `{"job", "holds"}`."""
        return self._call(
            "GET", f"/admin/jobs/{int(job_id)}/holds", params={"after": after, "limit": limit}
        )

    def resync_all(self) -> JsonObject:
        """Start a bulk job of every directory source: the `Resync`."""
        return self._call("POST", "/admin/jobs/resync")

    def resync(self, batch_id: str) -> JsonObject:
        """A "resync all" batch: `{"batch", "done", "jobs", "skipped"}`."""
        return self._call("GET", f"/admin/jobs/resync/{_segment(batch_id)}")

    # -- users ---------------------------------------------------------------------------

    def find_users(
        self, source: str, user_name: str, *, include_unsynchronized: bool = False
    ) -> JsonObject:
        """`{"users": [User]}` with exactly this user name (case-insensitive) in `source`;
        `include_unsynchronized` looks a directory user up, and adds them (SPEC §5.2)."""
        params = {
            "source": source,
            "user_name": user_name,
            "include_unsynchronized": "true" if include_unsynchronized else "false",
        }
        return self._call("GET", "/admin/users", params=params)

    def user(self, user_id: str) -> JsonObject:
        return self._call("GET", f"/admin/users/{_segment(user_id)}")

    def sync_user(self, user_id: str) -> JsonObject:
        """Sync one user now: `{"outcome", "user"}` (`user` null when the record is gone).

        Raises: AdminError `upstream_unavailable` (502) / `upstream_timeout` (504).
        """
        return self._call("POST", f"/admin/users/{_segment(user_id)}/sync")

    def disable_user(self, user_id: str, comment: str | None = None) -> JsonObject:
        return self._call(
            "POST", f"/admin/users/{_segment(user_id)}/disable", json=_comment(comment)
        )

    def enable_user(self, user_id: str, comment: str | None = None) -> JsonObject:
        """Re-enable a user an administrator or cleanup disabled: the `User`.

        Raises: AdminError `enable_refused` (409, `extra["source_status"]`) while the
        source reports the user disabled, expired or missing.
        """
        return self._call(
            "POST", f"/admin/users/{_segment(user_id)}/enable", json=_comment(comment)
        )

    # -- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AdminClient {self._shown}>"

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: JsonObject | None = None,
    ) -> JsonObject:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=query, json=json)
        except httpx.ConnectTimeout as exc:
            raise AdminError(
                0,
                "unreachable",
                f"cannot reach the gateway at {self._shown}: no connection within "
                f"{self._timeout:g} s",
            ) from exc
        except httpx.TimeoutException as exc:
            raise AdminError(
                0,
                "timeout",
                f"the gateway at {self._shown} did not answer {method} {path} within "
                f"{self._timeout:g} s",
            ) from exc
        except httpx.TransportError as exc:
            raise AdminError(
                0, "unreachable", f"cannot reach the gateway at {self._shown}: {_reason(exc)}"
            ) from exc
        return self._answer(response, method, path)

    def _answer(self, response: httpx.Response, method: str, path: str) -> JsonObject:
        status = response.status_code
        if status == 204:
            return {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if isinstance(body, dict):
                return body
            raise self._unexpected(status, method, path, "an answer that is not a JSON object")
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            extra = {k: v for k, v in body.items() if k not in ("error", "detail", "field")}
            field, detail = body.get("field"), body.get("detail")
            raise AdminError(
                status,
                body["error"],
                str(detail) if detail else response.reason_phrase or f"HTTP {status}",
                field if isinstance(field, str) else None,
                extra=extra,
            )
        raise self._unexpected(status, method, path, "no admin API error body")

    def _unexpected(self, status: int, method: str, path: str, what: str) -> AdminError:
        return AdminError(
            status,
            "unexpected_response",
            f"the gateway at {self._shown} answered {method} {path} with HTTP {status} and "
            f"{what} (is this an idgate gateway with the admin API?)",
        )


def _segment(value: str) -> str:
    """A path segment: ids are the API's, but never trusted to be URL-safe."""
    return quote(str(value), safe="")


def _comment(comment: str | None) -> JsonObject:
    return {} if comment is None else {"comment": comment}


def _reason(exc: httpx.TransportError) -> str:
    """Why a connection failed, in words; httpx's text names no header."""
    text = str(exc).strip()
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return text or type(exc).__name__
