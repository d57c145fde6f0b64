"""The user store: SQLAlchemy models, sessions, migrations and the queries the services use.

It knows nothing of the fronts, their protocols or the status rules. Functions that query or
write take a `Session` and never commit: the caller owns the unit of work.
"""
