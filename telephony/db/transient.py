"""Which driver errors mean the database is away for now, not that the work is wrong.

A module of its own so that the migrations (telephony/db/migrate.py), which the connection
module imports, tell a migration that cannot apply from an outage during one.
"""

from __future__ import annotations

import asyncio

import asyncpg

# Errors that mean "the server or the connection is not there right now", as opposed to a bug
# in our SQL, which must surface loudly instead of being spooled and retried forever.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # the connection broke or could not be made
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, crashed
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.InterfaceError,  # "connection is closed" and the like, from the client side
    # A multi-host DSN while no node takes writes yet (both replicas during a switchover).
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    # "cannot switch to state ...; another operation is in progress": a query cut off by its
    # timeout (a primary killed mid-write) left the connection mid-protocol, and the COMMIT
    # after it fails so. The write did not happen: spooled, its facts are written later.
    asyncpg.exceptions.InternalClientError,
    # The server takes no writes now: an admin's default_transaction_read_only, or a primary
    # demoted to a replica behind a single-host DSN or address. Nothing is wrong with what is
    # being written; treated as a refusal of the facts, every fact of every call in the
    # meantime went to the spool's rejected file and was never written (seen in the lab).
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    # A deadlock or a serialization failure: the server rolled the transaction back for no
    # fault of what it wrote (two nodes projecting one operator's row in opposite order, say),
    # and the same work succeeds when done again. Not a bug to keep in the rejected file.
    asyncpg.exceptions.TransactionRollbackError,
    # Refused at connection: a password or pg_hba.conf that does not match (the secret
    # rotated on the server, a typo in the DSN), a database not created yet. Only ever raised
    # while connecting, so never a refusal of what is written: as refusals, every call fact
    # went to the spool's rejected file and every command ended in asyncpg's traceback.
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    # A lock another session holds, past the lock_timeout our SQL set (a migration meeting a
    # backup's pg_dump, telephony/db/migrate.py): the same work succeeds once it is released.
    asyncpg.exceptions.LockNotAvailableError,
)
