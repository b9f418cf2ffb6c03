"""The screening service: the I/O around the pure score.

- :meth:`ScreeningService.pre_queue_features` is what the IVR calls while the greeting plays:
  the caller's history from PostgreSQL; the IVR scores it with the caller's keys
  (:func:`pre_queue_score`) once the route is chosen. It raises :class:`ScreeningUnavailable`
  when the database fails; the IVR bounds the wait and routes the call unscored
  (``telephony.screening.ivr``). :meth:`ScreeningService.pre_queue` does both at once.
- :meth:`ScreeningService.run_upkeep` scores each call again once it has ended, with its own
  features (and its recording's silence share when that arrives), and keeps whether it looked
  silent: that is what the caller's next call sees in its history.
- Operator labels, which feed the history, are written and read here for the HTTP API.
- The weights and thresholds come from an admin's JSON file, re-read when it changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import asyncpg

from telephony.asterisk.causes import NETWORK_CAUSES
from telephony.calls.ids import parse_caller_id
from telephony.core.errors import SiagaError
from telephony.core.loops import run_passes
from telephony.core.watched import WatchedFile
from telephony.db.connection import Database, DatabaseUnavailable
from telephony.screening.features import (
    DEFAULT_LOOKBACK,
    FIRST_TIME,
    CallerHistory,
    CallFeatures,
    CallShape,
    IvrBehaviour,
    PreQueueFeatures,
    local_hour,
)
from telephony.screening.score import (
    Score,
    ScoreConfig,
    ScoreConfigError,
    load_score_config,
    post_call_score,
    pre_queue_score,
)
from telephony.screening.store import EndedCall, ScreeningRepository, StoredLabel
from telephony.settings import Settings

log = logging.getLogger("telephony.screening")

# Ended calls are scored again for this long: a recording is paired within
# recordings_lookback_hours (48 h) of the call's end and measured soon after. A call due
# later (an end backfilled after a longer outage) is dropped from the queue unscored.
SCORING_MAX_AGE = timedelta(days=3)
SCORING_BATCH = 200  # queue rows (about as many calls) read and scored per transaction


class ScreeningUnavailable(SiagaError, RuntimeError):
    """The caller's history could not be read; the call must be routed unscored."""


class ConfigSource(Protocol):
    """Where the current screening configuration comes from."""

    def current(self) -> ScoreConfig:
        """The configuration to use now."""
        ...


def load_screening_config(path: Path | None) -> ScoreConfig:
    """The admin's configuration at ``path``, or the built-in defaults for ``None``."""
    return ScoreConfig() if path is None else load_score_config(path)


def screening_config_source(path: Path | None, *, missing_is_default: bool = False,
                            last_good: ScoreConfig | None = None) -> WatchedFile[ScoreConfig]:
    """The configuration at ``path`` (``Settings.screening_file``), re-read when it changes;
    an invalid edit is refused and the last good configuration stays. With
    ``missing_is_default`` the built-in defaults stand in while ``path`` does not exist;
    ``last_good`` is the running line's configuration, kept if ``path`` does not load now
    (see ``WatchedFile``)."""

    def load(current: Path | None) -> ScoreConfig:
        if current is not None and missing_is_default and not current.exists():
            return ScoreConfig()
        return load_screening_config(current)

    return WatchedFile(path, load, ScoreConfigError, what="screening configuration",
                       logger=log, last_good=last_good)


def line_screening_source(settings: Settings, last_good: ScoreConfig | None = None
                          ) -> WatchedFile[ScoreConfig]:
    """The configuration the line runs: ``screening_file`` if set, else the state
    directory's copy an admin published (the built-in defaults until then); ``last_good``:
    the running line's, for the IVR's process it starts. A published copy that no longer
    loads at the line's start (a rule added by an upgrade since it was published: a priority
    the dialplan cannot honour) starts the line on the built-in defaults, with one error
    line, rather than stopping it; a site's own ``screening_file`` is refused at start."""
    published = settings.screening_file is None
    return screening_config_source(
        settings.live_screening_file, missing_is_default=published,
        last_good=ScoreConfig() if last_good is None and published else last_good)


def call_features(call: EndedCall) -> CallFeatures:
    """The ended call's own features, from its stored row (pure, and total: any row will do).

    The rule of ``CallFeatures.looks_silent`` on these features, without the recording, is the
    generated column ``calls.looks_silent`` (migration 0004, remade by 0037 and 0041); keep the
    two in step:

    - a key was pressed exactly when ``ivr_first_key_ms`` is set; invalid keys only count then
      (a malformed first-key time was stored as NULL, so the keys cannot be placed);
    - answered exactly when ``answered_at`` is set; the talk time is AgentComplete's, else the
      time from the answer to the end;
    - the caller ended the call unless AgentComplete said otherwise, or the network or the
      line cut it (a network hang-up cause, ``NETWORK_CAUSES``; ``cut_reason`` set): then
      nothing says the caller left, in the IVR or on the answer;
    - queued exactly when ``queue`` is set (the first queue it joined).
    """
    first_key_ms = call.ivr_first_key_ms
    pressed = first_key_ms is not None
    outcome = call.ivr_outcome
    lost = call.cut_reason is not None or call.hangup_cause in NETWORK_CAUSES
    ivr = IvrBehaviour(
        # A menu ran unless the line routes directly or the IVR failed open (no menu heard).
        menu_offered=pressed or outcome not in ("direct", "failopen"),
        no_input=outcome == "no_input" and not pressed,
        invalid_keys=(call.ivr_invalid_keys or 0) if pressed else 0,
        # The IVR publishes its outcome when it routes the call: none and no queue means the
        # caller left while the IVR was still asking.
        hung_up_in_ivr=outcome is None and call.queue is None and not lost,
        first_key_seconds=None if first_key_ms is None else first_key_ms / 1000,
    )
    talk: float | None = None
    if call.answered_at is not None:
        talk = float(call.talk_seconds) if call.talk_seconds is not None else max(
            0.0, (call.ended_at - call.answered_at).total_seconds())
    elapsed = (call.ended_at - call.arrived_at).total_seconds() if call.arrived_at else 0.0
    shape = CallShape(
        # Event clocks and rounded talk times may disagree by a second: the talk time wins.
        duration_seconds=max(elapsed, talk or 0.0, 0.0),
        talk_seconds=talk,
        caller_ended=call.ended_by in (None, "caller") and not lost,
        silence_share=call.silence_share,
        queued=call.queue is not None,
    )
    return CallFeatures(ivr, shape)


class ScreeningService:
    """Scores callers before they queue and calls after they end; keeps operator labels."""

    def __init__(
        self,
        database: Database,
        config_source: ConfigSource,
        timezone: str,
        *,
        lookback: timedelta = DEFAULT_LOOKBACK,
        repository: ScreeningRepository | None = None,
    ) -> None:
        self._database = database
        self._config_source = config_source
        self._timezone = timezone
        self._lookback = lookback
        self._repo = repository or ScreeningRepository()
        self._labelled: list[Callable[[str, str], None]] = []

    def on_labelled(self, hook: Callable[[str, str], None]) -> None:
        """Call ``hook(call_id, label)`` once a label is stored (the wallboard's counters
        follow labels without reading them back)."""
        self._labelled.append(hook)

    def config(self) -> ScoreConfig:
        """The current weights, thresholds and priorities."""
        return self._config_source.current()

    async def _history(self, connection: asyncpg.Connection, key: str | None,
                       now: datetime) -> CallerHistory:
        if key is None:
            return FIRST_TIME  # withheld or malformed: no identity, no history
        return await self._repo.history(connection, key, now, self._lookback,
                                        suspect_score=self.config().post_call_threshold)

    def _pre_features(self, line: str, caller_number: str, now: datetime,
                      history: CallerHistory) -> PreQueueFeatures:
        return PreQueueFeatures(line, parse_caller_id(caller_number),
                                local_hour(now, self._timezone), history)

    async def pre_queue_features(self, line: str, caller_number: str,
                                 now: datetime) -> PreQueueFeatures:
        """What is known of a caller on ``line`` at ``now`` before the menu: history, caller id
        and hour.

        Raises :class:`ScreeningUnavailable` when the history cannot be read; a caller without
        a usable number needs no database at all.
        """
        key = parse_caller_id(caller_number).key
        history = FIRST_TIME
        if key is not None:
            try:
                history = await self._database.run(
                    lambda connection: self._history(connection, key, now))
            except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
                raise ScreeningUnavailable(f"caller history unavailable: {exc}") from exc
        return self._pre_features(line, caller_number, now, history)

    async def pre_queue(self, line: str, caller_number: str, now: datetime,
                        menu: IvrBehaviour | None = None) -> Score:
        """The pre-queue score of a caller on ``line`` at ``now`` who used the menu as ``menu``
        (``None``: not known): :meth:`pre_queue_features`, then :func:`pre_queue_score`."""
        features = await self.pre_queue_features(line, caller_number, now)
        return pre_queue_score(replace(features, menu=menu), self.config())

    async def label(self, call_id: str, label: str, actor: str, note: str = "") -> StoredLabel:
        """Label a call (genuine, prank, silent, accidental, test) as ``actor``; labelling it
        again corrects the label. Raises ``telephony.screening.store.LabelError`` (nothing
        written) for an unknown call or label."""
        stored = await self._database.run(
            lambda connection: self._repo.add_label(connection, call_id, label, actor, note))
        log.info("call %s labelled %s by %s", call_id, stored.label.value, stored.labelled_by)
        for hook in self._labelled:
            try:
                hook(call_id, stored.label.value)
            except Exception:  # the label is stored: a follower's bug must not undo the reply
                log.exception("label hook %r failed", hook)
        return stored

    async def labels(self, call_id: str) -> list[StoredLabel]:
        """The call's label events, oldest first; the last is the current label."""
        return await self._database.run(lambda connection: self._repo.labels(connection, call_id))

    async def _score_ended(self, connection: asyncpg.Connection, call: EndedCall,
                           config: ScoreConfig) -> None:
        # The history as it stood when the call arrived: the call itself is not in it.
        at = call.arrived_at or call.ended_at
        history = await self._history(connection, parse_caller_id(call.caller_number).key, at)
        features = call_features(call)
        pre = self._pre_features(call.line or "", call.caller_number, at, history)
        await self._repo.store_post_call(
            connection, call.call_id, looked_silent=features.looks_silent,
            score=post_call_score(pre, features, config), silence_share=call.silence_share,
        )

    async def rescore_ended_calls(self) -> int:
        """Post-call score every call that is due (see ``ScreeningRepository.due_calls``):
        ended, or its recording's silence share measured, since it was last scored; returns
        how many were scored. Reads only the queue of due calls, not the window of ended
        calls: a pass with nothing due costs one index read of an empty table."""
        config = self.config()

        async def batch(connection: asyncpg.Connection) -> tuple[int, int]:
            async with connection.transaction():
                due = await self._repo.due_calls(
                    connection, max_age=SCORING_MAX_AGE, limit=SCORING_BATCH)
                if due is None:
                    return 0, 0  # another line's pass is draining the queue: it scores them
                for call in due.calls:
                    await self._score_ended(connection, call, config)
                await self._repo.clear_due(connection, due.due_ids)
            return len(due.due_ids), len(due.calls)

        scored = 0
        while True:
            read, done = await self._database.run(batch)
            scored += done
            if read < SCORING_BATCH:
                return scored

    async def run_upkeep(self, interval: float) -> None:
        """Forever: post-call score ended calls every ``interval`` seconds.

        A database outage is logged once and retried at the same pace; a call missed meanwhile
        is scored when the database returns (within ``SCORING_MAX_AGE``), and until then its
        row alone tells its history whether it looked silent.
        """
        await run_passes("post-call screening", self.rescore_ended_calls,
                         lambda: asyncio.sleep(interval), log)
