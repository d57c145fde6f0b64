"""The words of a job row that code outside the store names too (SPEC §5.3).

They are the admin API's words as well (docs/admin-api.md, `Job.state`, `Job.counts`, the
details categories), so the admin CLI, a client of that API that never opens the store, takes
them from here. Pure values: importing this module loads no SQLAlchemy and no models, which
would double the CLI's start-up time.
"""

#: States of a job that still has a process working on it (`sync_jobs.state`).
LIVE_STATES = ("running", "stopping")
#: The counters of a job (`sync_jobs` columns), in the order reports show them: SPEC §5.3's,
#: then cleanup's deletions, refresh's failed reads and the users the mass-disable guard held.
COUNTERS = (
    "read",
    "added",
    "updated",
    "unchanged",
    "disabled",
    "not_synchronized",
    "deleted",
    "failed",
    "held",
)
#: The categories of a job's details lists (`sync_job_details.category`): every counter but
#: `read`.
CATEGORIES = COUNTERS[1:]
