"""The PostgreSQL primary killed under a stream of calls (issue 15): Patroni promotes the
synchronous replica, the line's pool reconnects through its multi-host DSN
(``target_session_attrs=read-write``), the spool holds the facts meanwhile, and every call
is stored exactly once, whole. Two faults: the primary's PostgreSQL alone (kill -9 of its
postmaster; Patroni fails over at once) and the whole node (kill -9 of Patroni and its
PostgreSQL; the replica takes over when the leader key expires)."""

from __future__ import annotations

import logging

import pytest

from telephony.lab.failover import FAULTS, Fault, run_failover
from telephony.lab.patroni import PatroniLab
from telephony.settings import Settings
from tests.support.ami import ANSWERED

pytestmark = pytest.mark.cluster

log = logging.getLogger(__name__)


@pytest.mark.parametrize("fault", FAULTS)
async def test_primary_killed_mid_stream_loses_and_duplicates_nothing(
        patroni: PatroniLab, cluster_line_settings: Settings, fault: Fault) -> None:
    result = await run_failover(patroni, cluster_line_settings, ANSWERED, fault=fault,
                                calls=300, rate=20.0, kill_after=3.0)
    log.info("failover (%s): %s", fault, result)

    assert result.promoted and result.promoted != result.killed
    assert result.failover_seconds is not None
    # The spool took over while no primary was there, and only then.
    assert not result.spooled_before_kill
    assert result.spool_peak > 0 and result.spool_held_seconds > 0
    assert result.facts_per_call > 0
    assert result.lost == [] and result.duplicated == []
    assert result.stored_calls == result.ended_calls == 300
    # The calls were unaffected: one AMI session throughout, nothing dropped.
    assert result.ami_logins == 1 and result.dropped == 0
    assert result.intact
