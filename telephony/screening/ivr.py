"""Prank screening inside the IVR: scored from history while the greeting plays, never in the
caller's way.

The history query starts the moment the IVR takes the call, so it runs while the caller hears
the greeting and the menu. When the flow has chosen a route it asks for the verdict and waits at
most ``timeout`` more; a score that is late, or fails for any reason (database down, a bug), is
logged in one line and the call queues as if it had no score. Screening informs, it never
blocks: that is the whole contract of :meth:`PreQueueScreener.verdict`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Protocol

from ivr.flow import ScreeningVerdict
from telephony.screening.score import Effect, Score, ScoreConfig, decide

log = logging.getLogger("telephony.screening")


class PreQueueScoring(Protocol):
    """What the IVR needs from the screening service (``telephony.screening.service``)."""

    def config(self) -> ScoreConfig:
        """The current weights, thresholds and priorities."""
        ...

    async def pre_queue(self, line: str, caller_number: str, now: datetime) -> Score:
        """The pre-queue score of a caller on ``line`` at ``now``."""
        ...


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
            scoring.pre_queue(line, caller_number, datetime.now(UTC)), name="pre-queue-score")

    async def verdict(self, category: str) -> ScreeningVerdict | None:
        """The verdict for this call routed to ``category``, or ``None`` (fail open)."""
        try:
            async with asyncio.timeout(self._timeout):
                score = await asyncio.shield(self._score)
            decision = decide(score, self._line, category, self._scoring.config())
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
            reasons=tuple(reason.text for reason in score.reasons),
            priority=decision.priority,
            screen=decision.effect is Effect.SCREENING_PROMPT,
        )

    async def close(self) -> None:
        """Cancel the score if it is still running; what it raised was logged or is moot."""
        self._score.cancel()
        await asyncio.wait([self._score])
        if not self._score.cancelled():
            self._score.exception()  # retrieved: asyncio would otherwise warn at collection
