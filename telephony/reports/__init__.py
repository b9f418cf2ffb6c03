"""Supervisor reports: shift figures (per shift, operator and queue) with CSV export, and the
regency head's daily summary.

``model`` holds the definitions and the maths (pure), ``service`` reads the calls through
``telephony.reports.store``, ``csvexport`` writes the tables as CSV for spreadsheets.
"""
