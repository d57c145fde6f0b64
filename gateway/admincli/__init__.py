"""`idgate sync | users | refresh | cleanup`: the admin CLI (SPEC §5, §7).

    idgate sync run SOURCE [--no-wait]          start a bulk sync and follow it to the end
    idgate sync status [SOURCE | --job ID] [--details CATEGORY|all]
    idgate sync history [--source S] [--kind K] [--limit N]
    idgate sync stop SOURCE | --job ID          what the job wrote stays
    idgate sync resync [--wait]                 a bulk sync of every directory source
    idgate users show NAME --source S [--include-unsynchronized] | --id ID
    idgate users sync NAME --source S | --id ID
    idgate users disable|enable NAME --source S | --id ID [--comment TEXT]
    idgate refresh run SOURCE [--wait]          the daily refresh of a source, now
    idgate cleanup run [--wait]                 the daily cleanup, now

Every command takes `--url` (default: $IDGATE_URL, else http://127.0.0.1:8080, the gateway's
default [http] listen), the admin token from $IDGATE_ADMIN_TOKEN or `--token-file PATH` (never
as an option value: shells keep history), and `--json`: the API's JSON document alone on
stdout, for scripts (an error is then the API's error body). Otherwise: rich tables, and a
live panel while a job runs (on a terminal; elsewhere a line per change, at most every few
seconds).

Why a client of a running gateway and not of the store: jobs must run inside a gateway
process (the process renews their leases, holds the directories' connection pools, and sends
the completion notices), role checks and the audit log then have one code path (the admin
API's), and the same commands work against a remote gateway.

Exit codes: 0 done; 1 the gateway refused or failed the operation, could not be reached, a
job ended other than `succeeded`, or nothing was found; 2 a usage error found before asking.

The modules, each importing only those above it: `surroundings` (what the commands take from
the world; tests replace it), `session` (client, console, output mode; error reports),
`options` (--url, --token-file, --json; the token; building the session), `formatting`
(times, counts and values as text), `render` (job and user tables and cards), `display`
(a running job, live or as lines), `follow` (polling a job to its end; Ctrl-C), `jobs` (the
sync, refresh and cleanup commands) and `users` (the users commands).
"""

from gateway.admincli.jobs import cleanup, refresh, sync
from gateway.admincli.surroundings import Surroundings
from gateway.admincli.users import users

__all__ = ["Surroundings", "cleanup", "refresh", "sync", "users"]
