"""The line's metrics (Prometheus, through ``prometheus-client``) and its health checks.

One registry per running line (:class:`~telephony.metrics.registry.LineMetrics`). Most
figures are read from the services at scrape time by a collector per feature (the wallboard's
operators and queues, the AMI listener's connection and lag, the spool, the recordings and
notification backlogs, disk space), so they have one source of truth; only what is an event
stream is counted as it happens (calls offered, answered and abandoned, fail-open IVR
sessions, FastAGI latencies). ``http.py`` serves ``/metrics``, ``/healthz`` and ``/readyz``.
"""
