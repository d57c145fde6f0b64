"""`idgate serve` on an address it cannot listen on (SPEC §8, "a config error naming the
field"): one line naming the setting and the reason, exit status 1, no traceback, whichever
front's port is taken."""

import socket
import subprocess

import pytest

from tests.ldapproxy.gateway_process import IDGATE, clean_environment


@pytest.mark.parametrize("taken", ["http.listen", "ldap.listen"])
def test_a_taken_port_is_one_clear_line_and_exit_1(tmp_path, taken):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        # The other front on port 0: it can never be the one refused.
        ports = {"http.listen": 0, "ldap.listen": 0, taken: busy}
        env = clean_environment(
            IDGATE_HTTP__LISTEN=f"127.0.0.1:{ports['http.listen']}",
            IDGATE_LDAP__LISTEN=f"127.0.0.1:{ports['ldap.listen']}",
        )
        done = subprocess.run(
            [str(IDGATE), "serve"],  # the demo: no config file needed
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"idgate: {taken}: cannot listen on 127.0.0.1:{busy}: Address already in use"
