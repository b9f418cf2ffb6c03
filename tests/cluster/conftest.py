"""The cluster tier (marker ``cluster``): several lab Asterisk nodes and line servers on
loopback, each node on its own 127.0.0.x address and ports. The database comes from the
session's embedded PostgreSQL (tests/conftest.py)."""
