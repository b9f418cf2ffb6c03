"""Kamailio, the SIP front of a cluster of Asterisk nodes: its configuration, from Settings.

What the front tells the nodes: every request it relays comes from its own address, so a node
cannot tell the carrier's calls by their source address as a single node does. The front adds
:data:`CARRIER_MARK_HEADER` to each INVITE it relays from the carrier's address and strips it
from every other request, whoever sent it; behind a front a node identifies the carrier by
that header (``pjsip.conf``'s ``[carrier]`` identify) and takes the carrier endpoint's
requests from the front's and the carrier's addresses alone (``pjsip_cluster.conf``).
"""

CARRIER_MARK_HEADER = "X-Siaga112-Carrier"
CARRIER_MARK_VALUE = "trunk"
