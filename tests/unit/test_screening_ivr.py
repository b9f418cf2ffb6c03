"""The IVR's screening adapter fails open: late, failing or broken scoring yields no verdict."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest

from telephony.screening.ivr import PreQueueScreener
from telephony.screening.score import Reason, Score, ScoreConfig
from tests.support.screening import HAND_SET


class Scoring:
    def __init__(self, value: float = 0.9, *, delay: float = 0.0,
                 error: Exception | None = None, config_error: Exception | None = None) -> None:
        self.value, self.delay, self.error, self.config_error = value, delay, error, config_error
        self.asked: list[tuple[str, str]] = []
        self.cancelled = False

    def config(self) -> ScoreConfig:
        if self.config_error is not None:
            raise self.config_error
        return HAND_SET

    async def pre_queue(self, line: str, caller_number: str, now: datetime) -> Score:
        self.asked.append((line, caller_number))
        assert now.tzinfo is not None
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return Score(self.value, (Reason("hour", "6 panggilan dalam 1 jam terakhir", 2.0),))


async def test_a_high_score_screens_and_keeps_emergency_at_the_floor() -> None:
    scoring = Scoring(0.9)
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=1.0)
    verdict = await screener.verdict("emergency")
    await screener.close()
    assert verdict is not None
    assert (verdict.score, verdict.screen, verdict.priority) == (0.9, True, 5)
    assert verdict.reasons == ("6 panggilan dalam 1 jam terakhir",)
    assert scoring.asked == [("112", "081234567890")]


async def test_a_complaint_with_a_middling_score_is_only_lowered() -> None:
    screener = PreQueueScreener(Scoring(0.6), "112", "081234567890", timeout=1.0)
    verdict = await screener.verdict("complaint")
    await screener.close()
    assert verdict is not None and (verdict.screen, verdict.priority) == (False, 0)


async def test_scoring_starts_before_the_verdict_is_asked() -> None:
    scoring = Scoring(0.1)
    screener = PreQueueScreener(scoring, "119", "081234567890", timeout=1.0)
    await asyncio.sleep(0)
    assert scoring.asked  # running while the greeting plays
    verdict = await screener.verdict("emergency")
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
        assert await screener.verdict("emergency") is None
    await screener.close()
    assert len(caplog.records) == 1 and "c-1" in caplog.records[0].getMessage()


async def test_a_late_score_yields_no_verdict_and_is_cancelled_on_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scoring = Scoring(delay=30.0)
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=0.05)
    with caplog.at_level(logging.WARNING, "telephony.screening"):
        assert await screener.verdict("emergency") is None
    assert "not ready within 50 ms" in caplog.text
    await screener.close()
    assert scoring.cancelled


async def test_a_caller_who_hangs_up_first_leaves_nothing_running() -> None:
    scoring = Scoring(delay=30.0)
    screener = PreQueueScreener(scoring, "112", "081234567890", timeout=1.0)
    await asyncio.sleep(0)
    await screener.close()
    assert scoring.cancelled


async def test_a_failure_nobody_asked_about_is_not_reported_as_unretrieved() -> None:
    screener = PreQueueScreener(Scoring(error=RuntimeError("x")), "112", "0812", timeout=1.0)
    await asyncio.sleep(0.01)
    await screener.close()  # warnings are errors: an unretrieved exception would fail this
