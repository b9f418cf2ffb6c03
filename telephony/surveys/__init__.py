"""Caller-rating surveys: once an incident is resolved, the line calls the caller back (AMI
Originate) into a short IVR survey (``ivr.survey``) and stores the rating on the incident.

``model`` holds the rules (pure), ``service`` runs them against PostgreSQL
(``telephony.surveys.store``) and Asterisk, ``route`` is the FastAGI route the callback runs.
"""
