"""What a handler is given and what the route table is made of.

A handler is a plain blocking function `(Call) -> answer`: the front runs it in the thread
pool (STYLE habit 12), after the token, the role, the path, the query and the body have all
been checked, so a handler only calls services and renders their answers (habit 4).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.auth.tokens import BearerTokens
from gateway.engine.roles import Permission
from gateway.jobs.service import Jobs
from gateway.operations.admin import Administration
from gateway.users.admin import UserAdministration
from gateway.users.lookup import ExactLookup
from gateway.users.service import Actor
from scim.admin.models import Answer, Body, NoBody, NoQuery, Query

#: Told of every answered request: endpoint name, method, HTTP status, seconds.
RequestRecorder = Callable[[str, str, int, float], None]

B = TypeVar("B", bound=Body)
Q = TypeVar("Q", bound=Query)


@dataclass(frozen=True)
class AdminServices:
    """The gateway services behind /admin (the front reaches nothing else)."""

    users: UserAdministration
    lookup: ExactLookup
    jobs: Jobs
    administration: Administration
    tokens: BearerTokens
    #: Told of every request (for /metrics); None records nothing.
    record: RequestRecorder | None = None


@dataclass(frozen=True)
class Call:
    """One checked request: who asks, and its validated path, query and body."""

    services: AdminServices
    actor: Actor
    path: Mapping[str, Any]
    query: Query
    body: Body

    def query_as(self, model: type[Q]) -> Q:
        if not isinstance(self.query, model):
            raise TypeError(f"the route's query model is {type(self.query).__name__}")
        return self.query

    def body_as(self, model: type[B]) -> B:
        if not isinstance(self.body, model):
            raise TypeError(f"the route's body model is {type(self.body).__name__}")
        return self.body


#: A JSON object to answer with the route's status, or None for an empty answer (204).
Reply = dict[str, Any] | None
Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class AdminRoute:
    """One row of the route table: everything the front, the role check and the OpenAPI
    document need to know about an operation."""

    method: str
    #: Relative to /admin; `{name}` or `{name:int}` parameters, checked by `PATH_PARAMETERS`.
    path: str
    #: What the administrator's role must allow; None: any administrator.
    permission: Permission | None
    handler: Handler
    summary: str
    #: The answer's model (None: no body, with status 204).
    answer: type[Answer] | None
    body: type[Body] = NoBody
    query: type[Query] = NoQuery
    status: int = 200
    #: Error statuses beyond those every route may give (400, 401, 403, 404).
    errors: tuple[int, ...] = field(default=())
