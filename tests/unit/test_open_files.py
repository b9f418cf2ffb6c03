"""The accept guard's rules: one line per minute with the refusals it stands for, every other
report to the handler that was there before, put on a loop once."""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import pytest

from telephony.core.open_files import (
    ACCEPT_EXHAUSTED,
    REPEAT_SECONDS,
    UNLIMITED_SOFT,
    guard_accepts,
    raise_open_files_limit,
)


def test_refused_accepts_are_one_line_a_minute_and_other_reports_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        others: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: others.append(context))
        now = [100.0]
        guard_accepts(loop, clock=lambda: now[0])
        guard_accepts(loop, clock=lambda: now[0])  # twice: still one guard
        refused = {"message": ACCEPT_EXHAUSTED, "exception": OSError(24, "Too many open files")}
        with caplog.at_level(logging.ERROR, "telephony.open_files"):
            for _ in range(140):
                loop.call_exception_handler(refused)
            now[0] += REPEAT_SECONDS - 1
            loop.call_exception_handler(refused)
            now[0] += 1
            loop.call_exception_handler(refused)
        lines = [r.getMessage() for r in caplog.records if r.name == "telephony.open_files"]
        assert len(lines) == 2
        assert lines[0].endswith("; 1 refusals since the last such line")
        assert lines[1].endswith("; 141 refusals since the last such line")
        loop.call_exception_handler({"message": "something else"})
        assert others == [{"message": "something else"}]
    finally:
        loop.close()


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        with caplog.at_level(logging.INFO, "telephony.open_files"):
            raise_open_files_limit()
            raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            raise_open_files_limit()  # already there: nothing to say
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    expected = UNLIMITED_SOFT if hard == resource.RLIM_INFINITY else hard
    assert raised == expected
    said = [r.getMessage() for r in caplog.records if r.name == "telephony.open_files"]
    assert said == ([f"open files limit raised from {lowered} to {expected}"]
                    if expected > lowered else [])
