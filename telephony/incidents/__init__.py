"""Incidents: the record operators work on, one per event, holding every call about it.

By topic, each with its rules (pure), its SQL and its service:

- the incident and its calls: ``model``, ``edits`` (operators' edits), ``store``, ``service``;
- dispatches and dispatch targets: ``dispatches``, ``dispatch_store``, ``dispatch_service``;
- agencies, recipients and places: ``directory``, ``directory_store``, ``directory_service``;
- the notification outbox: ``outbox``, ``outbox_store``, ``outbox_service``, and ``notifiers``
  that deliver;
- field teams' files: ``attachment_meta`` (what is recorded) and ``attachments`` (the bytes).

``errors`` holds every refusal, ``config`` the tunables, ``ledger`` the lock-and-record steps
the services share, and ``services`` builds them together with their upkeep loop.
"""
