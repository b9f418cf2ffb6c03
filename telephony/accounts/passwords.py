"""Password hashing with argon2id (argon2-cffi), off the event loop.

Hashing costs tens of milliseconds of CPU and tens of MiB by design; it runs in a worker thread
so one login does not stall call handling. argon2's exceptions stay inside this adapter.
"""

from __future__ import annotations

import asyncio
import logging

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger("telephony.accounts")


class PasswordHasher:
    """Hashes new passwords and checks typed ones against stored hashes."""

    def __init__(self, *, time_cost: int = 3, memory_cost_kib: int = 65536,
                 parallelism: int = 4) -> None:
        # argon2-cffi's defaults are RFC 9106's second recommended profile.
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism)
        # Checked when the username is unknown, so that case costs what a wrong password costs
        # and response times do not tell which usernames exist. Made on first use, off the
        # event loop.
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        """The PHC-format argon2id hash of ``password``."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash`` (``None``: no account; always False)."""
        if stored_hash is None and self._decoy is None:
            self._decoy = await self.hash("siaga112 decoy password")
        try:
            return await asyncio.to_thread(
                self._hasher.verify, stored_hash or self._decoy or "", password
            ) and stored_hash is not None
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError) as exc:
            log.error("stored password hash cannot be checked (%s); login refused",
                      type(exc).__name__)
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with weaker parameters than today's."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
