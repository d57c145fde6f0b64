"""Benchmark users in a throwaway slapd, loaded offline with `slapadd`.

Adding 10,000 entries over LDAP takes minutes; `slapadd` writes them straight into the mdb
database in seconds. It must not run while slapd does, so `load` stops the server, adds the
entries and starts it again at the same URL (the `Slapd` class keeps its data and ports
across a restart). slapadd also writes the operational attributes (entryUUID, timestamps)
the gateway keys users by.
"""

import subprocess
import time
from dataclasses import dataclass

from tests.servers import seed
from tests.servers.slapd import Slapd, SlapdError, find_installation


@dataclass(frozen=True)
class BenchUser:
    uid: str
    dn: str
    password: str


def generate(count: int, people_dn: str) -> list[BenchUser]:
    """`count` users `bench-000001` ... under `people_dn`, each with its own password."""
    width = max(6, len(str(count)))
    users = []
    for number in range(1, count + 1):
        uid = f"bench-{number:0{width}d}"
        users.append(BenchUser(uid, f"uid={uid},{people_dn}", f"{uid}-pw"))
    return users


def to_ldif(users: list[BenchUser]) -> str:
    """The users as inetOrgPerson entries, passwords stored `{SSHA}` (as the seed users)."""
    return "\n".join(
        seed.render_entry(
            [
                ("dn", user.dn),
                ("objectClass", "inetOrgPerson"),
                ("uid", user.uid),
                ("cn", f"Bench User {user.uid[6:]}"),
                ("sn", "User"),
                ("givenName", "Bench"),
                ("displayName", f"Bench User {user.uid[6:]}"),
                ("mail", f"{user.uid}@{seed.MAIL_DOMAIN}"),
                ("userPassword", seed.ssha(user.password)),
            ]
        )
        for user in users
    )


def load(slapd: Slapd, users: list[BenchUser]) -> float:
    """Add `users` to a started `slapd` with slapadd; returns the seconds it took, restart
    included.

    Raises:
        SlapdError: slapadd failed (its message says why) or slapd did not come back.
    """
    began = time.perf_counter()
    ldif = slapd.workdir / "bench-users.ldif"
    ldif.write_text(to_ldif(users))
    slapd.stop()
    command = [
        str(find_installation().slapadd),
        "-q",  # no consistency checks: a throwaway database, and ten times faster
        "-F", str(slapd.workdir / "config"),
        "-b", slapd.suffix,
        "-l", str(ldif),
    ]  # fmt: skip
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command, capture_output=True, text=True, check=False, timeout=600
    )
    if completed.returncode != 0:
        raise SlapdError(f"slapadd failed:\n{completed.stderr.strip()}")
    slapd.start()
    return time.perf_counter() - began
