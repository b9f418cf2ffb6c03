"""Call recordings: made by Asterisk (MixMonitor), paired with their calls, measured,
transcoded, checksummed and stored by the worker, removed by the retention policy.

``domain`` holds the pure rules, ``audio`` the pydub processing (run as a child process),
``worker`` the database-backed work queue, ``retention`` the policy's application,
``library`` finding stored recordings and their files for playback, and ``commands`` the
``siaga112 recordings`` commands. The SQL is in ``recordings.store``.
"""
