"""Instrumentation for the call path's process (``CallPath.instrument``): the worst moment for
type-ahead keys, made certain. After every AGI reply that may carry a key, the IVR's event
loop is held (as a surge or a long report once held it) before the IVR can send its next
command. Each hold is logged, and the line's log gets the record (the test counts them)."""

from __future__ import annotations

import logging
import time

from telephony.agi.protocol import AgiReply
from telephony.agi.server import AgiSession

# How long the loop is held after a reply that may carry a key (the 2 comes after the 1
# arrives well inside it: about 0.19 s).
STALL_SECONDS = 0.6
PROMPT_VERBS = frozenset({"STREAM FILE", "GET DATA", "GOSUB"})
HELD = "held the IVR's loop after %s"

log = logging.getLogger("tests.held_prompts")


def instrument() -> None:
    """Hold the loop after every prompt's reply, from now on in this process."""
    command = AgiSession.command

    async def held_command(self: AgiSession, verb: str, *arguments: str,
                           **options: bool) -> AgiReply:
        reply = await command(self, verb, *arguments, **options)
        if verb in PROMPT_VERBS:
            log.warning(HELD, verb)
            # Blocks the loop on purpose: the stall under test, not a wait for something.
            time.sleep(STALL_SECONDS)  # noqa: ASYNC251
        return reply

    AgiSession.command = held_command  # type: ignore[method-assign]
