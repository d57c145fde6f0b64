"""DN keys: the store's lookup key follows the connector's comparison rule (one rule)."""

import pytest

from gateway.directory.dn import dn_key as directory_parts
from gateway.errors import InvalidInput
from gateway.names import dn_key, dn_parts


def test_case_spacing_and_escape_spellings_meet():
    assert dn_key("UID=Alice, OU=People,dc=example,dc=org") == dn_key(
        "uid=alice,ou=people,dc=example,dc=org"
    )
    assert dn_key(r"cn=a\,b,dc=x") == dn_key(r"cn=a\2Cb,dc=x")


def test_a_decoded_separator_is_escaped_again_in_the_key():
    # The value "a,b" is one RDN value, not two RDNs: the key must keep it so.
    assert dn_key(r"cn=a\2Cb,dc=x") == r"cn=a\,b,dc=x"
    assert dn_key(r"cn=a\5C,dc=x") == r"cn=a\\,dc=x"


def test_the_connector_compares_with_the_same_rule():
    assert directory_parts is dn_parts


def test_not_a_dn_is_invalid_input():
    with pytest.raises(InvalidInput, match="dn"):
        dn_key("not a dn")
