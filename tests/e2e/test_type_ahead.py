"""Type-ahead keys end to end: real Asterisk 22, our FastAGI IVR, sipp callers pressing real
RFC 4733 DTMF, a sipp operator; the verdict is read from the database the line wrote.

A caller who knows the menu presses 1 during the greeting and 2 at once (50 ms after the 1
ended). Asterisk's res_agi throws away the keys that arrive while it waits for the next AGI
command; a line whose event loop is busy for a moment (a surge, a report) when the 1 comes back
made that wait long, and the 2 was lost: the caller went to the general emergency queue instead
of fire. The IVR now asks the whole menu inside one AGI command (the dialplan's
[siaga112-menu]), so the 2 waits in the channel for the sub-menu's Read(). (The IVR also has a
process of its own now, which a surge or a report no longer holds: the test holds that
process's loop itself.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from telephony.app import Line
from telephony.callbacks.model import CallbackReason, Entry
from telephony.lab import sipp
from telephony.lab.chroot import Lab
from telephony.settings import Settings
from tests.e2e.harness import ALL_SKILLS, ended_call, unique_caller
from tests.support.net import own_lab
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

BASE = Settings(
    **own_lab("keys-test"),
    http_port=0,
    lab_operators=4,
    queue_max_wait=60,
    queue_wrapup_seconds=0,
    agi_session_timeout=60,
    ami_reconnect_seconds=0.5,
    db_retry_seconds=0.5,
)


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return BASE


@pytest.fixture(scope="module")
def line_operators() -> Mapping[str, Mapping[str, int]]:
    return {"PJSIP/op1001": ALL_SKILLS}


@pytest.fixture
async def busy_loop(line: Line, caplog: pytest.LogCaptureFixture
                    ) -> AsyncIterator[Callable[[], list[str]]]:
    """The worst moment, made certain: the IVR's process is started again holding its event
    loop after every AGI reply that may carry a key (tests/support/held_prompts.py). Yields
    what tells the holds so far."""
    await line.callpath.stop()
    line.callpath.instrument = ("tests.support.held_prompts",)
    await line.callpath.start()

    def held() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "tests.held_prompts"]

    try:
        yield held
    finally:
        await line.callpath.stop()
        line.callpath.instrument = ()
        await line.callpath.start()


async def call(settings: Settings, caller_id: str, dtmf: str, *, delay: float,
               stay: float = 6) -> sipp.SippResult:
    async with sipp.caller(settings.sip_host, settings.sip_port, "112", caller_id=caller_id,
                           dtmf=dtmf, dtmf_delay=delay, talk_seconds=stay) as caller:
        return await caller.wait()


async def test_1_during_the_greeting_and_2_right_after_reach_fire_through_a_busy_loop(
    line: Line, settings: Settings, busy_loop: Callable[[], list[str]]
) -> None:
    caller_id = unique_caller("0815")
    # 0.5 s after the answer the greeting is still playing; the 2 follows the 1 by 50 ms. The
    # caller stays long enough for a lost 2 to show as what it was: the sub-menu's silence,
    # the general emergency queue.
    result = await call(settings, caller_id, "1+2", delay=0.5, stay=16)
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert busy_loop(), "the stall never happened: the test proves nothing"
    assert (record.ivr_choice, record.ivr_outcome, record.ivr_skill, record.queue) == (
        "1", "chosen", "fire", "fire")
    assert record.operator == "PJSIP/op1001"


def log_size(lab: Lab) -> int:
    return lab.messages_log.stat().st_size if lab.messages_log.exists() else 0


async def abnormal_menu_exits(line: Line, lab: Lab, since: int, call_id: str) -> list[str]:
    """The NOTICEs res_agi logged after ``since`` (a size of messages.log) for the call's
    channel: "Abnormal AGI Gosub(siaga112-menu,...) exit", the menu routine ended without its
    Return() (extensions.conf, [siaga112-menu], says when and why that is harmless)."""
    channel = await line.database.run(lambda c: c.fetchval(
        "SELECT channel FROM calls WHERE call_id = $1", call_id))
    with lab.messages_log.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    return [entry for entry in text.splitlines()
            if f"{channel} Abnormal AGI Gosub(siaga112-menu," in entry]


async def test_keys_back_to_back_reach_their_queue(
    line: Line, lab: Lab, settings: Settings
) -> None:
    since = log_size(lab)
    caller_id = unique_caller("0815")
    result = await call(settings, caller_id, "1+4", delay=0.2)
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.ivr_choice, record.ivr_skill, record.queue) == ("1", "disaster", "disaster")
    # The routine Returned: Asterisk's "Abnormal AGI Gosub" notice is not the lot of every
    # call, only of a caller who hangs up in the menu (the last test here).
    assert await abnormal_menu_exits(line, lab, since, record.call_id) == []


async def test_a_wrong_key_then_the_right_one_at_once_is_served(
    line: Line, settings: Settings
) -> None:
    # 7 is no option: the caller hears the invalid prompt, but 3 was already pressed.
    caller_id = unique_caller("0815")
    result = await call(settings, caller_id, "7+3", delay=0.5)
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.ivr_choice, record.ivr_outcome, record.queue) == (
        "3", "chosen", "information")
    keypad = await line.database.run(lambda c: c.fetchrow(
        "SELECT ivr_first_key_ms, ivr_invalid_keys FROM calls WHERE call_id = $1",
        record.call_id))
    assert keypad is not None and keypad["ivr_invalid_keys"] == 1
    # The 7 came during the greeting (about 2 s long), timed from the start of the menu.
    assert 0 < keypad["ivr_first_key_ms"] < 2000


async def test_a_prompt_the_menu_routine_cannot_play_fails_open(
    line: Line, lab: Lab, settings: Settings
) -> None:
    # The sub-menu's sound is gone: Read() stops with an error, the IVR decides nothing and
    # the dialplan queues the caller at the line's fail-open queue, as with no IVR at all.
    sounds = sorted(lab.sounds_dir.glob("menu-darurat.*"))
    assert sounds
    hidden = [sound.rename(sound.with_name("." + sound.name)) for sound in sounds]
    try:
        caller_id = unique_caller("0815")
        result = await call(settings, caller_id, "1", delay=0.5)
    finally:
        for sound, kept in zip(sounds, hidden, strict=True):
            kept.rename(sound)
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.ivr_outcome, record.queue, record.operator) == (
        "failopen", "emergency-general", "PJSIP/op1001")


async def test_a_caller_who_pressed_then_hung_up_in_the_sub_menu_did_not_call_silently(
    line: Line, lab: Lab, settings: Settings
) -> None:
    since = log_size(lab)
    # Trial 2026-12-06: a hang-up inside the menu routine ends it without Return(), so the IVR
    # never read the trace; the call was stored as if no key had been pressed, and so looked
    # silent (a nuisance call in the caller's screening history) though the caller had
    # pressed 1 for an emergency before the line dropped.
    caller_id = unique_caller("0815")
    result = await call(settings, caller_id, "1", delay=0.5, stay=1)
    assert result.ok, result.errors
    record = await ended_call(line, caller_id)
    assert (record.disposition, record.queue) == ("ended_in_ivr", None)
    keypad = await line.database.run(lambda c: c.fetchrow(
        "SELECT ivr_first_key_ms, looks_silent FROM calls WHERE call_id = $1",
        record.call_id))
    assert keypad is not None and not keypad["looks_silent"]
    # The 1 came during the greeting, timed from the start of the menu as the IVR times it.
    assert 0 < keypad["ivr_first_key_ms"] < 2000
    # The 1 chose the emergency sub-menu, whose routes are all emergencies: the caller chose an
    # emergency and dropped, so an operator calls them back.
    assert record.ivr_category == "emergency"

    async def on_the_worklist() -> Entry | None:
        return next((e for e in await line.callbacks.worklist()
                     if record.call_id in {c.call_id for c in e.calls}), None)

    entry = await eventually(f"{record.call_id} on the worklist", on_the_worklist, within=10)
    assert entry.reason is CallbackReason.IVR_EMERGENCY
    # The hang-up ended the routine without its Return(): res_agi says so once, harmlessly.
    assert len(await abnormal_menu_exits(line, lab, since, record.call_id)) == 1
