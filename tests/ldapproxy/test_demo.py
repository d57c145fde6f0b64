"""The zero-configuration start (SPEC §8): `idgate serve` with no file runs the built-in demo,
and the commands its banner prints work as printed."""

import json
import shlex
import subprocess
from collections.abc import Iterator

import pytest

from tests.ldapproxy.clients import ldap_tool
from tests.ldapproxy.gateway_process import DemoProcess, banner_commands


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoProcess]:
    process = DemoProcess()
    try:
        process.start()
        yield process
        process.shut_down()
    finally:
        process.close()


def test_the_demo_listens_where_the_environment_says(demo: DemoProcess) -> None:
    banner = demo.banner()

    assert f"LDAP front   ldap://127.0.0.1:{demo.port}" in banner
    assert f"HTTP front   http://127.0.0.1:{demo.http_port}" in banner
    assert (demo.workdir / "idgate.db").exists()  # ./idgate.db, in its working directory


def test_the_printed_commands_work_as_printed(demo: DemoProcess) -> None:
    alice_line, bob_line = banner_commands(demo.banner())
    assert "alice" in alice_line and "bob" in bob_line

    alice = ldap_tool(*shlex.split(alice_line))
    bob = ldap_tool(*shlex.split(bob_line))

    assert (alice.returncode, alice.stdout.strip()) == (
        0,
        "dn:uid=alice,ou=people,dc=demo,dc=idgate",
    ), alice.stderr
    assert bob.returncode == 49, bob
    assert "account disabled" in bob.stderr  # the demo directory took bob's password


def test_the_printed_search_finds_alice(demo: DemoProcess) -> None:
    [line] = [ln for ln in demo.banner().splitlines() if "ldapsearch" in ln]

    result = ldap_tool(*shlex.split(line[line.index("ldapsearch") :]))

    assert result.returncode == 0, result.stderr
    assert "dn: uid=alice,ou=people,dc=demo,dc=idgate" in result.stdout


def _curl(line: str) -> dict:
    command = shlex.split(line[line.index("curl") :])
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_printed_scim_commands_work_as_printed(demo: DemoProcess) -> None:
    # SPEC §8: a newcomer can query SCIM within a minute. alice is in the store once she bound
    # (bob and carol are refused at first sight, so never added: SPEC §4.2, row 1).
    banner = demo.banner()
    alice_line, _ = banner_commands(banner)
    assert ldap_tool(*shlex.split(alice_line)).returncode == 0
    [admin_line] = [ln for ln in banner.splitlines() if "admin view:" in ln]
    [provision_line] = [ln for ln in banner.splitlines() if "provision:" in ln]

    created = _curl(provision_line)
    disabled = _curl(admin_line)
    everyone = _curl(admin_line.split("?filter=")[0] + "'")

    assert created["userName"] == "dave" and created["id"]
    extension = "urn:idgate:params:scim:schemas:extension:gateway:2.0:User"
    assert disabled["totalResults"] == 0
    sources = {user["userName"]: user[extension]["source"] for user in everyone["Resources"]}
    assert sources == {"alice": "demo", "dave": "demo-scim"}


def test_a_bulk_sync_of_the_demo_directory_runs_from_the_cli(demo: DemoProcess) -> None:
    # The README's `idgate sync run demo`: the demo directory takes Simple Paged Results
    # (RFC 2696), as a bulk sync needs, and its RootDSE says so (the source test checks it).
    from gateway.runtime.demo import ADMIN_TOKEN
    from tests.gateway.admin_gateway import idgate_cli

    url = f"http://127.0.0.1:{demo.http_port}"
    run = idgate_cli(url, "sync", "run", "demo", "--json", token=ADMIN_TOKEN)
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    assert job["state"] == "succeeded"
    assert (job["counts"]["read"], job["counts"]["not_synchronized"]) == (3, 2)  # bob, carol
    tested = idgate_cli(url, "sync", "status", "demo", "--json", token=ADMIN_TOKEN)
    assert json.loads(tested.stdout)["id"] == job["id"]
