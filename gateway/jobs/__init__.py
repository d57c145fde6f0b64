"""Work that runs over many users (SPEC §5.3-§5.6).

- `service` (Jobs): a job is a row and a lease; start, follow, stop, recover, resync all.
- `bulk`: a bulk sync of one directory source; `daily`: the refresh of idle users, cleanup and
  their scheduler; `guard`: the mass-disable guard both consult.
- `notify`: the completion notice (webhook, e-mail) of a job such as "resync all".
"""
