"""A cluster of Asterisk nodes seen from one node's line (issue 15): its peers' liveness and
what their death leaves behind in this node's device state."""
