"""Supervisor reports: shift figures (per shift, operator and queue) with CSV export, and the
regency head's daily summary.

``model`` holds the definitions, their Python reference implementation (the tests' oracle) and
the reports' assembly (pure); ``telephony.reports.store`` has the database compute the figures;
``service`` puts them together; ``csvexport`` writes the tables as CSV for spreadsheets.
"""
