"""Starting and stopping the gateway process (SPEC §8): SIGTERM ends it cleanly within a few
seconds, with clients still connected, and its log stays one JSON object per line."""

import socket

from tests.gateway.realgw import slapd_source
from tests.ldapproxy import ber
from tests.ldapproxy.clients import PEOPLE
from tests.ldapproxy.gateway_process import SERVICE_DN, SERVICE_PASSWORD, GatewayProcess
from tests.servers.slapd import Slapd


def test_sigterm_with_clients_connected_exits_cleanly(slapd: Slapd) -> None:
    gateway = GatewayProcess([slapd_source([slapd.url])])
    try:
        gateway.start()
        idle = ber.Client(gateway.port)  # connected, never says a word
        bound = ber.Client(gateway.port)
        bound.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD)))
        assert bound.read().code == 0
        bound.send(ber.message(2, ber.search_request(PEOPLE)))
        half = ber.Client(gateway.port)
        half.send(ber.message(1, ber.bind_request(SERVICE_DN, SERVICE_PASSWORD))[:7])

        took = gateway.shut_down(timeout=5)

        assert took < 5
        for client in (idle, bound, half):
            client.read_all_until_closed(timeout=30)  # the server closed them all (at once)
            client.close()
        records = gateway.log_records()  # every line is JSON
        messages = [r["message"] for r in records]
        assert "idgate shutting down" in messages
        assert not [r for r in records if r["level"] in ("error", "critical")], records
        # Nothing listens any more.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", gateway.port)) != 0
    finally:
        gateway.close()
