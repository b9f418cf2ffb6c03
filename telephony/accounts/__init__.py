"""Accounts of the people who use the API and the console: roles, argon2id passwords,
sessions, login throttling and the audit log.

``model`` holds the rules (pure), ``passwords`` the argon2 adapter, ``service`` runs them
against PostgreSQL through ``telephony.accounts.store``, and ``commands`` the
``siaga112 account`` commands.
"""
