"""A second gateway process for `test_bindcache`: one write to the shared store, then exit.

Usage: python -m tests.gateway.auth.bindcache_worker <store url> disable|fail <user id>
"""

import sys
from datetime import UTC, datetime

from gateway.engine.types import Role
from gateway.users.admin import UserAdministration
from gateway.users.service import Actor
from store import failures
from store.db import Store


def main(url: str, action: str, user_id: str) -> None:
    store = Store.connect(url, pool_size=1)
    try:
        if action == "disable":
            UserAdministration(store).disable(Actor("ops", Role.SUPER_ADMIN), user_id)
        elif action == "fail":
            with store.writing() as session:
                failures.add_failure(session, user_id, datetime.now(UTC))
        else:
            raise SystemExit(f"unknown action {action!r}")
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
