"""Prank screening in a running line (a whole line on free ports, its IVR in a process of its
own): the screening configuration file an admin or a site engineer edits while calls go on."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from telephony.app import running_line
from telephony.settings import Settings
from tests.support.callpath import killed_and_replaced


async def test_an_ivr_process_replaced_after_a_bad_edit_starts_from_the_last_good_files(
    line_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The screening file (and the menu) are edited badly while the line runs: the line
    refuses the edits and keeps the last good ones. When the IVR's process then dies and is
    replaced, the new one used to read the files afresh, fail, and be refused again and
    again for as long as they stayed broken: every call failed open, with no menu and no
    screening. The new one starts from the line's last good menu and configuration."""
    screening = tmp_path / "screening.json"
    screening.write_text(json.dumps({"screening_threshold": 0.99}), encoding="utf-8")
    menu = tmp_path / "menu.json"
    menu.write_text(resources.files("ivr").joinpath("menu.json").read_text("utf-8"), "utf-8")
    settings = replace(line_settings, screening_file=screening, menu_file=menu)
    async with running_line(settings) as line:
        screening.write_text("{not json", encoding="utf-8")
        menu.write_text('{"version": "x"}', encoding="utf-8")
        await killed_and_replaced(line.callpath, "a new call path process despite the bad "
                                                 "edits")
    started = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
               and "does not load, starting with the last good one" in r.getMessage()]
    assert len(started) == 2, started
    assert any(m.startswith("screening configuration") for m in started)
    assert any(m.startswith("menu") for m in started)
