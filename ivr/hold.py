"""What a caller hears while an operator speaks to an agency before handing the call over (an
attended transfer or a conference, ``telephony/transfers/``): Asterisk holds the caller and
plays its music on hold, which is this prompt over and over (``asterisk-conf/
musiconhold.conf`` names it). A recorded ``prompts-recorded/alih-tunggu.wav`` replaces it
like any other prompt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

PROMPT_HOLD: Final = "alih-tunggu"

HOLD_PROMPTS: Final[Mapping[str, str]] = {
    PROMPT_HOLD: "Mohon tetap di saluran. Petugas kami sedang menghubungkan Anda dengan "
                 "instansi terkait.",
}
