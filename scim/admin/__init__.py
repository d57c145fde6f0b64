"""The admin API (`/admin`, docs/admin-api.md): JSON over HTTP for administrators (SPEC §7).

    routes.py    the one route table: method, path, permission, handler, models
    handlers.py  one function per operation: call a gateway service, render its answer
    models.py    the JSON shapes (pydantic): requests validated, answers built, schemas drawn
    render.py    pure functions from service views to the answers' JSON
    errors.py    domain errors → (status, code), mapped once; no traceback ever in a body
    openapi.py   the OpenAPI 3.1 document, drawn from the route table
    app.py       the ASGI application: token, role, path, query and body checks, then the handler
    call.py      what handlers get (`Call`) and the services behind them (`AdminServices`)

It calls gateway services only; the store is out of its reach (an import-linter contract).
"""

from scim.admin.app import create_admin_app
from scim.admin.call import AdminServices
from scim.admin.routes import PREFIX, ROUTES

__all__ = ["PREFIX", "ROUTES", "AdminServices", "create_admin_app"]
