"""The IVR's screening adapter scores the history with the caller's keys, and fails open: late,
failing or broken scoring yields no verdict."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from datetime import datetime

import pytest

from ivr.flow import REASON_SEPARATOR, IvrResult, Outcome
from ivr.menu import Route
from telephony.ami.tracker import MAX_TEXT
from telephony.calls.ids import parse_caller_id
from telephony.screening.features import CallerHistory, IvrBehaviour, PreQueueFeatures
from telephony.screening.ivr import PreQueueScreener, fitting_reasons, menu_behaviour
from telephony.screening.score import ScoreConfig, pre_queue_score
from tests.support.polling import eventually
from tests.support.screening import HAND_SET

# Six silent calls within the hour: HAND_SET scores that 0.95 before the menu.
BURST = CallerHistory(calls_last_hour=6, silent_last_hour=6, calls_last_day=6,
                      silent_last_day=6, calls_last_week=6, silent_last_week=6, calls=6,
                      silent_calls=6, seconds_since_last_nuisance=300.0)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class Scoring:
    def __init__(self, value: float = 0.9, *, delay: float = 0.0,
                 error: Exception | None = None, config_error: Exception | None = None,
                 history: CallerHistory = BURST, unwind: float = 0.0) -> None:
        self.value, self.delay, self.error, self.config_error = value, delay, error, config_error
        self.history = history
        # How long a cancelled read takes to stop: asyncpg's wait for a hung server to
        # acknowledge the cancellation, then a failure of its own.
        self.unwind = unwind
        self.unwound = False
        self.asked: list[tuple[str, str]] = []
        self.cancelled = False

    def config(self) -> ScoreConfig:
        if self.config_error is not None:
            raise self.config_error
        # The bias that puts the history's score, before any key counts, at ``value``.
        unbiased = pre_queue_score(self._features("112", "081234567890", 10),
                                   dataclasses.replace(HAND_SET, bias=0.0)).value
        return dataclasses.replace(HAND_SET, bias=_logit(self.value) - _logit(unbiased))

    def _features(self, line: str, caller_number: str, hour: int) -> PreQueueFeatures:
        return PreQueueFeatures(line, parse_caller_id(caller_number), hour, self.history)

    async def pre_queue_features(self, line: str, caller_number: str,
                                 now: datetime) -> PreQueueFeatures:
        self.asked.append((line, caller_number))
        assert now.tzinfo is not None
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            if self.unwind:
                await asyncio.sleep(self.unwind)
                self.unwound = True
                raise RuntimeError("PostgreSQL unavailable") from None
            raise
        if self.error is not None:
            raise self.error
        return self._features(line, caller_number, 10)


def routed(category: str = "emergency", outcome: Outcome = Outcome.CHOSEN,
           first_key_ms: int | None = 16000, invalid_keys: int = 0) -> IvrResult:
    """The IVR's result; by default a key that neither raises nor lowers the score (after the
    options were all announced)."""
    return IvrResult(Route(category, "general", "emergency-general"), outcome, "1",
                     first_key_ms, invalid_keys)


async def test_a_high_score_screens_and_keeps_emergency_at_the_floor() -> None:
    scoring = Scoring(0.9)
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=1.0)
    verdict = await screener.verdict(routed("emergency", Outcome.NO_INPUT, None))
    await screener.close()
    assert verdict is not None
    # No key at all adds its weight to the history's 0.9.
    assert verdict.score > 0.9 and (verdict.screen, verdict.priority) == (True, 5)
    assert verdict.reasons[0] == "6 panggilan dalam 1 jam terakhir, 6 di antaranya diam"
    assert "Tidak menekan tombol apa pun di menu" in verdict.reasons
    assert scoring.asked == [("112", "081234567890")]


async def test_a_complaint_with_a_middling_score_is_only_lowered() -> None:
    screener = PreQueueScreener(Scoring(0.6), "112", "081234567890", timeout=1.0)
    verdict = await screener.verdict(routed("complaint"))
    await screener.close()
    assert verdict is not None and (verdict.screen, verdict.priority) == (False, 0)


async def test_the_keys_move_the_score_taken_before_the_queue() -> None:
    # The same history (0.6 with a neutral key); the verdict moves with the caller's keys: a
    # choice after listening lowers it, no key or wrong keys raise it.
    scores = []
    for result in (routed(first_key_ms=6000), routed("emergency", Outcome.NO_INPUT, None),
                   routed(first_key_ms=9000, invalid_keys=2)):
        screener = PreQueueScreener(Scoring(0.6), "112", "081234567890", timeout=1.0)
        verdict = await screener.verdict(result)
        await screener.close()
        assert verdict is not None
        scores.append(verdict.score)
    assert scores[0] < 0.6 < min(scores[1:])


async def test_the_reasons_published_are_whole_and_fit_what_the_line_stores() -> None:
    """A serial nuisance caller of every kind, with wrong keys: four long reasons, 330
    characters joined. The line stores IVR_REASONS cut to MAX_TEXT: the operator read the
    third reason broken off mid-word and not the fourth. Published now: whole reasons only,
    as many as fit."""
    mixed = CallerHistory(
        calls_last_hour=24, silent_last_hour=6, prank_last_hour=6, accidental_last_hour=6,
        suspected_last_hour=6, calls_last_day=24, silent_last_day=6, prank_last_day=6,
        accidental_last_day=6, suspected_last_day=6, calls_last_week=40, silent_last_week=10,
        prank_last_week=10, accidental_last_week=10, suspected_last_week=10, calls=40,
        silent_calls=10, prank_calls=10, accidental_calls=10, suspected_calls=10,
        seconds_since_last_nuisance=60.0)
    scoring = Scoring(0.9, history=mixed)
    result = routed(first_key_ms=1000, invalid_keys=12)
    every = pre_queue_score(
        dataclasses.replace(scoring._features("112", "081234567890", 10),
                            menu=menu_behaviour(result)), scoring.config())
    assert len(REASON_SEPARATOR.join(r.text for r in every.reasons)) > MAX_TEXT
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=1.0)
    verdict = await screener.verdict(result)
    await screener.close()
    assert verdict is not None
    published = REASON_SEPARATOR.join(verdict.reasons)
    assert len(published) <= MAX_TEXT
    assert published.split(REASON_SEPARATOR) == [
        r.text for r in every.reasons if r.text in verdict.reasons]
    assert verdict.reasons[0] == every.reasons[0].text and len(verdict.reasons) == 3
    assert fitting_reasons(("a" * 10, "b" * 10, "c"), limit=13) == ("a" * 10, "c")


def test_menu_behaviour_reads_the_ivr_result_as_the_stored_call_is_read() -> None:
    assert menu_behaviour(routed(first_key_ms=1500, invalid_keys=1)) == IvrBehaviour(
        menu_offered=True, invalid_keys=1, first_key_seconds=1.5)
    assert menu_behaviour(routed("emergency", Outcome.NO_INPUT, None)) == IvrBehaviour(
        menu_offered=True, no_input=True)
    # A wrong key, then silence: not "no key at all".
    assert menu_behaviour(routed("emergency", Outcome.NO_INPUT, 3000, 1)) == IvrBehaviour(
        menu_offered=True, invalid_keys=1, first_key_seconds=3.0)
    direct = IvrResult(Route("emergency", "medical", "medical"), Outcome.DIRECT, "")
    assert menu_behaviour(direct) == IvrBehaviour(menu_offered=False)


async def test_scoring_starts_before_the_verdict_is_asked() -> None:
    scoring = Scoring(0.1)
    screener = PreQueueScreener(scoring, "119", "081234567890", timeout=1.0)
    await asyncio.sleep(0)
    assert scoring.asked  # running while the greeting plays
    verdict = await screener.verdict(routed())
    await screener.close()
    assert verdict is not None and (verdict.screen, verdict.priority) == (False, 10)


@pytest.mark.parametrize("scoring", [
    Scoring(error=RuntimeError("database unreachable")),
    Scoring(error=ZeroDivisionError("a bug")),
    Scoring(config_error=ValueError("bad config")),
], ids=["unavailable", "bug", "config"])
async def test_failures_yield_no_verdict_and_one_log_line(
    scoring: Scoring, caplog: pytest.LogCaptureFixture
) -> None:
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=1.0, call_id="c-1")
    with caplog.at_level(logging.ERROR, "telephony.screening"):
        assert await screener.verdict(routed()) is None
    await screener.close()
    assert len(caplog.records) == 1 and "c-1" in caplog.records[0].getMessage()


async def test_a_late_score_yields_no_verdict_and_is_cancelled_on_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scoring = Scoring(delay=30.0)
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=0.05)
    with caplog.at_level(logging.WARNING, "telephony.screening"):
        assert await screener.verdict(routed()) is None
    assert "not ready within 50 ms" in caplog.text
    await screener.close()
    await eventually("the late score cancelled", lambda: cancelled(scoring), 1)


async def test_a_caller_who_hangs_up_first_leaves_nothing_running() -> None:
    scoring = Scoring(delay=30.0)
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=1.0)
    await asyncio.sleep(0)
    await screener.close()
    await eventually("the score cancelled", lambda: cancelled(scoring), 1)


async def cancelled(scoring: Scoring) -> bool | None:
    return True if scoring.cancelled else None


async def test_closing_does_not_wait_for_a_cancelled_read_to_unwind() -> None:
    # A read on a hung PostgreSQL stops only when the pool gives up on the cancellation (its
    # acquire timeout, 3 s); the caller went on to the queue only once the screener closed.
    scoring = Scoring(delay=30.0, unwind=0.5)
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=0.05)
    assert await screener.verdict(routed()) is None
    loop = asyncio.get_running_loop()
    started = loop.time()
    await screener.close()
    assert loop.time() - started < 0.05
    await eventually("the late score cancelled", lambda: cancelled(scoring), 1)

    async def unwound() -> bool | None:
        return True if scoring.unwound else None

    # Its own failure, once it has unwound, is retrieved there (warnings are errors).
    await eventually("the cancelled read unwound", unwound, 2)


async def test_a_failure_nobody_asked_about_is_not_reported_as_unretrieved() -> None:
    screener = PreQueueScreener(Scoring(error=RuntimeError("x")), "112", "0812", timeout=1.0)
    await asyncio.sleep(0.01)
    await screener.close()  # warnings are errors: an unretrieved exception would fail this
