"""Incidents: the record operators work on, one per event, holding every call about it.

``model`` holds the rules (pure, no I/O), ``service`` runs them against PostgreSQL through
``telephony.incidents.store``, ``notifiers`` delivers dispatch notifications, and
``attachments`` stores the files field teams upload.
"""
