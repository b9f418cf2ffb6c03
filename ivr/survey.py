"""The caller-rating survey: the short IVR a caller is called back into once their incident is
resolved. Plain Python over the :class:`~ivr.channel.Channel` interface.

Rules a caller can rely on:
- the call says who is calling and why, then asks for a rating 1-5 (pressing during a prompt
  works);
- an invalid key or no key gets one more try (an invalid key with an explanation first);
- a rating is thanked; a caller who hangs up before rating, or twice gives none, is not
  asked again by this call;
- a rating counts as soon as it is pressed, even if the caller does not wait for the thanks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Final

from ivr.channel import CallerHungUp, Channel, ChannelError
from ivr.keys import PROMPT_PREFIX

PROMPT_INTRO: Final = "survei-pembuka"
PROMPT_ASK: Final = "survei-nilai"
PROMPT_INVALID: Final = "survei-salah"
PROMPT_THANKS: Final = "survei-terima-kasih"
PROMPT_NO_RATING: Final = "survei-tanpa-nilai"

# Generated with the menu's prompts (``siaga112 prompts``); a recorded
# ``prompts-recorded/<name>.wav`` replaces one like any other prompt.
SURVEY_PROMPTS: Final[Mapping[str, str]] = {
    PROMPT_INTRO: "Halo, kami dari layanan panggilan darurat. "
                  "Laporan Anda kepada kami sudah selesai ditangani.",
    PROMPT_ASK: "Mohon nilai pelayanan kami. Tekan satu sampai lima. "
                "Satu berarti sangat buruk, lima berarti sangat baik.",
    PROMPT_INVALID: "Maaf, tekan angka satu sampai lima.",
    PROMPT_THANKS: "Terima kasih atas penilaian Anda. Sampai jumpa.",
    PROMPT_NO_RATING: "Terima kasih atas waktu Anda. Sampai jumpa.",
}

RATING_KEYS: Final = "12345"
ANSWER_TIMEOUT_MS: Final = 5000  # after the question ends
ASKS: Final = 2  # the question, and one more try


def _played(*names: str) -> list[str]:
    return [PROMPT_PREFIX + name for name in names]


async def run_survey(channel: Channel, *, timeout_ms: int = ANSWER_TIMEOUT_MS) -> int | None:
    """Ask the caller for a rating; returns it (1-5), or ``None`` when they gave none.

    :class:`~ivr.channel.ChannelError` other than a hang-up (a protocol fault) propagates
    before a rating; after one, nothing can take the rating away.
    """
    prompts = _played(PROMPT_INTRO, PROMPT_ASK)
    try:
        for _ in range(ASKS):
            key = await channel.ask_digit(prompts, timeout_ms)
            if key is not None and key in RATING_KEYS:
                rating = int(key)
                break
            prompts = _played(PROMPT_ASK) if key is None else _played(PROMPT_INVALID,
                                                                      PROMPT_ASK)
        else:
            await channel.play(PROMPT_PREFIX + PROMPT_NO_RATING)
            return None
    except CallerHungUp:
        return None
    with contextlib.suppress(ChannelError):  # the thanks is a courtesy; the rating stands
        await channel.play(PROMPT_PREFIX + PROMPT_THANKS)
    return rating
