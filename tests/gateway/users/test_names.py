"""DN keys: the store's lookup key follows the connector's comparison rule (one rule)."""

import random

import pytest

from gateway.directory.dn import dn_key as directory_parts
from gateway.errors import InvalidInput
from gateway.users import names
from gateway.users.names import dn_key, dn_parts


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


def _parser_parts(dn: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...] | None:
    with monkeypatch.context() as patched:
        patched.setattr(names, "_plain_parts", lambda _dn: None)
        return names.dn_parts(dn)


def test_the_plain_dn_shortcut_agrees_with_the_rfc_4514_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dn_parts` splits plain DNs itself (a bulk sync's hot path); it must give exactly what
    the full parser gives, for every DN it takes, and leave the others to the parser."""
    rng = random.Random(4514)
    chars = "abcXYZ é\tß\u00a0İ1-._@\udc80"
    taken = 0
    for _ in range(3000):
        dn = ",".join(
            f"{rng.choice(['uid', 'CN', 'ou', ' dc', 'o ', 'c-n', 'x1', '1.2'])}="
            + "".join(rng.choice(chars) for _ in range(rng.randint(0, 6)))
            for _ in range(rng.randint(1, 4))
        )
        if names._plain_parts(dn) is not None:
            taken += 1
            assert names.dn_parts(dn) == _parser_parts(dn, monkeypatch), dn
    assert taken > 1000
    for special in ("cn=a\\,b,dc=x", "cn=a+sn=b,dc=x", 'cn="q",dc=x', "cn=a=b,dc=x", "cn=#04"):
        assert names._plain_parts(special) is None
