"""Call-backs of dropped and abandoned callers: the worklist, the operator's call-back through
the carrier, and a supervisor's closing of an entry."""
