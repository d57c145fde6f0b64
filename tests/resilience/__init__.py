"""The resilience suite (issue 7): faults of the directory, the store and the process,
several gateways on one store, and hostile input, against real servers and processes."""
