"""Server order, cool-down and the return to the preferred server."""

import pytest

from gateway.directory.servers import ServerAddress, ServerList


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def servers(count: int, clock: Clock, cooldown: float = 30.0) -> ServerList:
    addresses = tuple(ServerAddress.parse(f"ldap://dc{i}.example:389") for i in range(count))
    return ServerList(addresses, cooldown, clock)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ldap://dc1.example", ServerAddress("ldap://dc1.example", "dc1.example", 389, False)),
        ("LDAPS://dc1.example", ServerAddress("LDAPS://dc1.example", "dc1.example", 636, True)),
        ("ldap://10.0.0.1:3389", ServerAddress("ldap://10.0.0.1:3389", "10.0.0.1", 3389, False)),
        ("ldaps://[::1]:1636", ServerAddress("ldaps://[::1]:1636", "::1", 1636, True)),
    ],
)
def test_parse(url: str, expected: ServerAddress) -> None:
    assert ServerAddress.parse(url) == expected


@pytest.mark.parametrize("url", ["http://x", "ldap://", "ldapi://%2fvar"])
def test_parse_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        ServerAddress.parse(url)


def test_configured_order_while_all_answer() -> None:
    assert servers(3, Clock()).candidates() == [0, 1, 2]


def test_a_failed_server_goes_last_until_its_cooldown_ends() -> None:
    clock = Clock()
    order = servers(3, clock)

    assert order.mark_down(0) is True
    assert order.mark_down(0) is False  # already failing: not logged again
    assert order.candidates() == [1, 2, 0]
    assert not order.better_than(1)

    clock.now += 30.0
    assert order.candidates() == [0, 1, 2]
    # Connections to server 1 now make way for the preferred one.
    assert order.better_than(1)
    assert not order.better_than(0)


def test_all_down_are_still_tried_in_order() -> None:
    order = servers(2, Clock())
    order.mark_down(1)
    order.mark_down(0)

    assert order.candidates() == [0, 1]


def test_mark_up_ends_the_cooldown() -> None:
    order = servers(2, Clock())
    order.mark_down(0)

    assert order.mark_up(0) is True
    assert order.mark_up(0) is False
    assert order.candidates() == [0, 1]


def test_no_servers() -> None:
    with pytest.raises(ValueError):
        ServerList((), 1.0)
