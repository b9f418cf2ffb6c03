"""The accept guard's rules: one line per minute with the refusals it stands for, every other
report to the handler that was there before, put on a loop once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from telephony.core.open_files import ACCEPT_EXHAUSTED, REPEAT_SECONDS, guard_accepts


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
