"""How a search's end is judged complete or not, and what the operator is told (pure)."""

import pytest

from gateway.directory.completeness import Shortfall, advice, incomplete, shortfall_of
from gateway.errors import IncompleteRead

DN = "cn=idgate,ou=services,dc=example,dc=org"


@pytest.mark.parametrize(
    ("code", "cookie_sent", "message", "expected"),
    [
        (0, False, "", None),
        (0, True, "", None),
        (4, True, "", Shortfall.SIZE_LIMIT),
        (3, True, "", Shortfall.TIME_LIMIT),
        (11, False, "", Shortfall.ADMIN_LIMIT),
        # OpenLDAP's size.prtotal=disabled and a page above size.pr: paging refused.
        (11, False, "pagedResults control not allowed", Shortfall.PAGING_REFUSED),
        (11, False, "illegal pagedResults page size", Shortfall.PAGING_REFUSED),
        (32, False, "", Shortfall.NO_ROOT),
        (10, False, "", Shortfall.REFERRAL),
        (12, False, "", Shortfall.PAGING_REFUSED),
        # OpenLDAP: "paged results cookie is invalid" (2) or "... or old" (53).
        (2, True, "", Shortfall.COOKIE_REFUSED),
        (53, True, "", Shortfall.COOKIE_REFUSED),
        (53, False, "", Shortfall.PAGING_REFUSED),
        # Plain failures are raised as they are, not as shortfalls.
        (51, True, "", None),
        (52, False, "", None),
        (80, False, "", None),
    ],
)
def test_paged_search_ends(
    code: int, cookie_sent: bool, message: str, expected: Shortfall | None
) -> None:
    assert shortfall_of(code, paged=True, cookie_sent=cookie_sent, message=message) is expected


def test_a_plain_search_knows_no_paging_shortfalls() -> None:
    assert shortfall_of(12, paged=False, cookie_sent=False) is None
    assert shortfall_of(53, paged=False, cookie_sent=False) is None
    assert shortfall_of(32, paged=False, cookie_sent=False) is Shortfall.NO_ROOT


@pytest.mark.parametrize("shortfall", list(Shortfall))
@pytest.mark.parametrize("kind", ["ldap", "ad"])
def test_every_shortfall_has_advice(shortfall: Shortfall, kind: str) -> None:
    text = advice(shortfall, kind=kind, bind_dn=DN, timeout_seconds=10, page_size=500)
    assert len(text) > 40


def test_openldap_advice_names_the_account_and_the_limit() -> None:
    text = advice(Shortfall.SIZE_LIMIT, kind="ldap", bind_dn=DN, timeout_seconds=10)
    assert f'dn.exact="{DN}" size.prtotal=unlimited' in text
    assert "MaxResultSetSize" in advice(
        Shortfall.SIZE_LIMIT, kind="ad", bind_dn=DN, timeout_seconds=10
    )
    assert "size.prtotal=disabled" in advice(
        Shortfall.PAGING_REFUSED, kind="ldap", bind_dn=DN, timeout_seconds=10, page_size=500
    )


def test_the_error_names_source_server_root_and_count() -> None:
    error = incomplete(
        Shortfall.SIZE_LIMIT,
        source_id="corp",
        url="ldap://dc1:389",
        root="ou=people,dc=example,dc=org",
        entries=500,
        kind="ldap",
        bind_dn=DN,
        timeout_seconds=10,
    )
    assert isinstance(error, IncompleteRead)
    assert (error.root, error.shortfall, error.entries) == (
        "ou=people,dc=example,dc=org",
        "a size limit",
        500,
    )
    text = str(error)
    assert text.startswith(
        "source corp: the read of root ou=people,dc=example,dc=org on ldap://dc1:389 stopped"
        " at a size limit after 500 entries: "
    )
