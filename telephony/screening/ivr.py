"""Prank screening inside the IVR: the history read while the greeting plays, the score taken
with the caller's keys, never in the caller's way.

The history query starts the moment the IVR takes the call, so it runs while the caller hears
the greeting and the menu. When the flow has chosen a route it asks for the verdict with what
the caller did in the menu (no key, wrong keys, a key before any option was announced) and
waits at most ``timeout`` more for the history; the score itself is pure and takes
microseconds. A history that is late, or a failure for any reason (database down, a bug), is
logged in one line and the call queues as if it had no score. Screening informs, it never
blocks: that is the whole contract of :meth:`PreQueueScreener.verdict`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from ivr.flow import REASON_SEPARATOR, IvrResult, Outcome, ScreeningVerdict
from telephony.ami.tracker import MAX_TEXT
from telephony.core.tasks import let_unwind
from telephony.screening.features import IvrBehaviour, PreQueueFeatures
from telephony.screening.score import Effect, ScoreConfig, decide, pre_queue_score

log = logging.getLogger("telephony.screening")


def fitting_reasons(texts: tuple[str, ...], limit: int = MAX_TEXT) -> tuple[str, ...]:
    """The reasons, largest first, that fit ``limit`` characters once joined: whole ones only.

    The IVR publishes them as one channel variable, IVR_REASONS (``ivr.flow.publish``), and
    the line stores at most :data:`~telephony.ami.tracker.MAX_TEXT` characters of a
    variable's value.

    A serial nuisance caller with mixed labels has four long reasons (about 300 characters);
    cut by the store, the operator read the last one broken off mid-word ("... ditandai
    iseng oleh op"). A reason that does not fit is left out, a shorter one after it may stay.
    """
    kept: list[str] = []
    used = 0
    for text in texts:
        cost = len(text) + (len(REASON_SEPARATOR) if kept else 0)
        if used + cost <= limit:
            kept.append(text)
            used += cost
    return tuple(kept)


class PreQueueScoring(Protocol):
    """What the IVR needs from the screening service (``telephony.screening.service``)."""

    def config(self) -> ScoreConfig:
        """The current weights, thresholds and priorities."""
        ...

    async def pre_queue_features(self, line: str, caller_number: str,
                                 now: datetime) -> PreQueueFeatures:
        """What is known of a caller on ``line`` at ``now`` before the menu: history, caller
        id, hour."""
        ...


def menu_behaviour(result: IvrResult) -> IvrBehaviour:
    """How the caller used the menu, as the IVR decided the route (the score's terms).

    The same rule as ``telephony.screening.service.call_features`` applies to the stored call,
    so the post-call score reads the keys as the verdict did.
    """
    if result.outcome is Outcome.DIRECT:
        return IvrBehaviour(menu_offered=False)
    pressed = result.first_key_ms is not None
    return IvrBehaviour(
        menu_offered=True,
        no_input=result.outcome is Outcome.NO_INPUT and not pressed,
        invalid_keys=result.invalid_keys if pressed else 0,
        first_key_seconds=None if result.first_key_ms is None else result.first_key_ms / 1000,
    )


class PreQueueScreener:
    """The screening of one call: implements :class:`ivr.flow.Screener`.

    Create it when the IVR takes the call (it starts scoring at once) and :meth:`close` it when
    the IVR ends, so that a caller who hangs up early leaves no query behind.
    """

    def __init__(
        self, scoring: PreQueueScoring, line: str, caller_number: str, timeout: float,
        call_id: str = "",
    ) -> None:
        self._scoring = scoring
        self._line = line
        self._timeout = timeout
        self._call_id = call_id
        self._score = asyncio.create_task(
            scoring.pre_queue_features(line, caller_number, datetime.now(UTC)),
            name="pre-queue-history")

    async def verdict(self, result: IvrResult) -> ScreeningVerdict | None:
        """The verdict for this call as the IVR decided it, or ``None`` (fail open)."""
        try:
            async with asyncio.timeout(self._timeout):
                features = await asyncio.shield(self._score)
            config = self._scoring.config()
            score = pre_queue_score(replace(features, menu=menu_behaviour(result)), config)
            decision = decide(score, self._line, result.route.category, config)
        except TimeoutError:
            log.warning("call %s: prank score not ready within %.0f ms, queued unscored",
                        self._call_id, self._timeout * 1000)
            return None
        # Anything at all: an emergency call must queue even when screening is broken.
        except Exception as exc:
            log.error("call %s: prank screening failed, queued unscored: %s: %s",
                      self._call_id, type(exc).__name__, exc)
            return None
        return ScreeningVerdict(
            score=score.value,
            reasons=fitting_reasons(tuple(reason.text for reason in score.reasons)),
            priority=decision.priority,
            screen=decision.effect is Effect.SCREENING_PROMPT,
        )

    async def close(self) -> None:
        """Cancel the score if it is still running, without waiting for it to stop.

        The IVR closes the screener before its AGI session ends, so the caller goes on to the
        queue only once this returns: a read cancelled on a hung PostgreSQL held every caller
        3 s more in silence (telephony/core/tasks.py)."""
        let_unwind(self._score)
