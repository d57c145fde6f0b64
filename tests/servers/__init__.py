"""Real servers (OpenLDAP slapd) that tests and benchmarks start as upstream directories."""
