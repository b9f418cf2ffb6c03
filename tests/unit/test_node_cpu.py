"""bench/cluster.py ``--node-cpu``'s pure parts: each node's CPU budget as cgroup v1 numbers
(telephony/lab/cgroup.py), the groups' paths, which leftover groups are stale, the process
tree a node's groups take, the refusal without a writable cgroup fs; and the surge's check
that no operator rang twice at once (bench/cluster.py's ``double_rings``, over the phones'
SIP trace read by ``phone_calls``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from telephony.lab.cgroup import (
    GROUP_PREFIX,
    PERIOD_US,
    RT_SHARE,
    CgroupError,
    CpuBudget,
    group_path,
    parent_pid,
    process_tree,
    stale_groups,
    usage_cores,
    writable_or_refuse,
)

# bench/ is not a package: its scripts import each other as top-level modules, as they do
# when run as `python bench/cluster.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from cluster import Answered, DoubleRing, Ring, double_rings, parse_args, phone_calls


def test_half_a_core_is_half_of_each_period_and_a_share_of_it_for_real_time() -> None:
    budget = CpuBudget(0.5)
    assert budget.period_us == PERIOD_US == 20_000
    assert budget.quota_us == 10_000
    assert budget.rt_runtime_us == round(0.5 * RT_SHARE * 20_000)


def test_a_budget_above_one_core_spans_cores_and_real_time_stays_within_the_period() -> None:
    budget = CpuBudget(3.0)
    assert budget.quota_us == 60_000
    assert budget.rt_runtime_us == 20_000


@pytest.mark.parametrize("fraction", [0.0, -0.5, 0.01, 100.0])
def test_a_budget_the_kernel_cannot_take_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError):
        CpuBudget(fraction)


def test_the_groups_are_under_a_parent_named_for_the_owner() -> None:
    root = Path("/sys/fs/cgroup/cpu")
    assert group_path(root, 4242) == root / f"{GROUP_PREFIX}4242"
    assert group_path(root, 4242, "node1") == root / f"{GROUP_PREFIX}4242" / "node1"


@pytest.mark.parametrize("name", ["", "../x", "a/b", "Node1", ".hidden"])
def test_a_node_name_that_is_no_plain_group_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        group_path(Path("/sys/fs/cgroup/cpu"), 1, name)


def test_only_groups_of_ended_owners_are_stale() -> None:
    names = [f"{GROUP_PREFIX}10", f"{GROUP_PREFIX}11", "docker", f"{GROUP_PREFIX}x", "user"]
    assert stale_groups(names, alive=[11, 1]) == [f"{GROUP_PREFIX}10"]


def test_the_parent_pid_is_read_past_a_command_with_spaces_and_parentheses() -> None:
    assert parent_pid("1234 (python3) S 77 1234 1234 0 -1") == 77
    assert parent_pid("99 (a) b (c)) R 5 99 99 0 -1") == 5


def test_a_process_tree_holds_every_descendant_and_nothing_else() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20, 30: 13}
    assert process_tree([10], parents) == [10, 11, 12, 13, 30]
    assert process_tree([10, 20], parents) == [10, 11, 12, 13, 20, 21, 30]
    assert process_tree([99], parents) == [99]


def test_cpu_time_over_wall_time_is_cores() -> None:
    assert usage_cores(1_500_000_000, 3.0) == pytest.approx(0.5)
    assert usage_cores(5, 0.0) == 0.0


def test_without_a_cgroup_controller_the_bench_refuses_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(CgroupError) as refused:
        writable_or_refuse((tmp_path / "cpu",))
    assert "\n" not in str(refused.value) and "cgroup v1" in str(refused.value)


def test_node_cpu_and_the_surge_mode_are_checked_on_the_command_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--mode", "surge", "--rate", "40", "--node-cpu", "0.5"])
    assert (args.rate, args.calls, args.node_cpu) == (40.0, 1000, 0.5)
    for argv in (["--mode", "surge"], ["--node-cpu", "0"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    assert "--node-cpu" in capsys.readouterr().err


T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_rings_one_after_another_are_no_double_ring() -> None:
    rings = [Ring("a", "PJSIP/op1", at(0)), Ring("b", "PJSIP/op1", at(5)),
             Ring("c", "PJSIP/op2", at(1))]
    answered = [Answered("a", "PJSIP/op1", at(0.1), at(4.9)),
                Answered("b", "PJSIP/op1", at(5.1), at(9)),
                Answered("c", "PJSIP/op2", at(1.1), at(6))]
    assert double_rings(rings, answered) == []


def test_a_ring_while_the_operator_talks_or_rings_for_another_call_is_found() -> None:
    talking = Ring("b", "PJSIP/op1", at(3))  # op1 talks to a from 0.1 to 4.9
    ringing = Ring("d", "PJSIP/op2", at(10.05))  # op2 rung for c at 10.0, answered at 10.2
    rings = [Ring("a", "PJSIP/op1", at(0)), talking, Ring("c", "PJSIP/op2", at(10)), ringing]
    answered = [Answered("a", "PJSIP/op1", at(0.1), at(4.9)),
                Answered("c", "PJSIP/op2", at(10.2), at(12))]
    assert double_rings(rings, answered) == [DoubleRing(talking, "a", talking=True),
                                             DoubleRing(ringing, "c", talking=False)]


def test_a_call_ringing_its_own_operator_again_is_no_double_ring() -> None:
    rings = [Ring("a", "PJSIP/op1", at(0)), Ring("a", "PJSIP/op1", at(0.5))]
    assert double_rings(rings, [Answered("a", "PJSIP/op1", at(0.6), at(3))]) == []


def _traced(stamp: str, direction: str, first: str, call_id: str, cseq: str) -> str:
    """One message of sipp's -trace_msg file."""
    head = ("UDP message received [300] bytes :" if direction == "in"
            else "UDP message sent (300 bytes):")
    return (f"----------------------------------------------- 2026-12-05 {stamp}\n{head}\n\n"
            f"{first}\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\n"
            f"Call-ID: {call_id}\nCSeq: {cseq}\nContent-Length: 0\n\n\n")


def test_the_phones_trace_gives_each_ring_and_how_long_each_call_held_the_phone() -> None:
    trace = "".join([
        _traced("22:00:00.000000", "in", "INVITE sip:op1@127.0.0.2:5070 SIP/2.0", "a", "1 INVITE"),
        _traced("22:00:00.001000", "out", "SIP/2.0 180 Ringing", "a", "1 INVITE"),
        # A retransmission of a's INVITE is no second ring.
        _traced("22:00:00.500000", "in", "INVITE sip:op1@127.0.0.2:5070 SIP/2.0", "a", "1 INVITE"),
        _traced("22:00:01.000000", "out", "SIP/2.0 200 OK", "a", "1 INVITE"),
        # b reaches op1 while a talks; c rings op2 and is cancelled.
        _traced("22:00:02.000000", "in", "INVITE sip:op1@127.0.0.2:5070 SIP/2.0", "b", "1 INVITE"),
        _traced("22:00:02.100000", "in", "INVITE sip:op2@127.0.0.2:5070 SIP/2.0", "c", "1 INVITE"),
        _traced("22:00:02.200000", "out", "SIP/2.0 487 Request Terminated", "c", "1 INVITE"),
        _traced("22:00:03.000000", "in", "BYE sip:127.0.0.2:5070 SIP/2.0", "a", "2 BYE"),
        # An OPTIONS qualify is no ring.
        _traced("22:00:03.500000", "in", "OPTIONS sip:op2@127.0.0.2:5070 SIP/2.0", "d",
                "1 OPTIONS"),
    ])
    rings, spans = phone_calls(trace)
    when = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    assert rings == [Ring("a", "op1", when), Ring("b", "op1", when + timedelta(seconds=2)),
                     Ring("c", "op2", when + timedelta(seconds=2.1))]
    assert sorted(spans, key=lambda s: s.call_id) == [
        Answered("a", "op1", when + timedelta(seconds=1), when + timedelta(seconds=3)),
        Answered("c", "op2", when + timedelta(seconds=2.2), when + timedelta(seconds=2.2))]
    assert double_rings(rings, spans) == [DoubleRing(rings[1], "a", talking=True)]
