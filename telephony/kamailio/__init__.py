"""Kamailio, the SIP front of a cluster of Asterisk nodes: its configuration, from Settings."""
