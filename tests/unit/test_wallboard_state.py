"""The live wallboard: callers in Asterisk's order with their waits, operators' states across
their queues, wrap-up, and a picture that stays right across a reconnection or a restart."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from telephony.ami.tracker import LOGGED_OUT, AmiEvent, CallTracker, QueueSnapshot
from telephony.calls.facts import (
    CallEnded,
    CallStarted,
    CallVanished,
    IvrVariableSet,
    OperatorAnswered,
    OperatorCompleted,
    OperatorLeft,
    OperatorStateChanged,
    QueueAbandoned,
    QueueJoined,
    QueueLeft,
)
from telephony.reports.model import (
    CallInfo,
    ChangedCalls,
    LiveAnswer,
    LiveCall,
    LivePicture,
    Talking,
)
from telephony.wallboard.state import LiveBoard, OperatorState
from tests.support.ami import FIXTURES, events, resync_replies

T0 = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
A, B = "PJSIP/op1001", "PJSIP/op1002"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def started(call_id: str, seconds: float = 0, line: str = "112") -> CallStarted:
    return CallStarted(call_id, call_id, f"PJSIP/carrier-{call_id}", "0812", "", line,
                       at(seconds))


def member(operator: str, queue: str, state: str, seconds: float, *, paused: bool = False,
           reason: str = "") -> OperatorStateChanged:
    return OperatorStateChanged(operator, queue, state, paused, reason, at(seconds))


def board() -> LiveBoard:
    return LiveBoard(wrapup_seconds=5)


def waiting(b: LiveBoard, queue: str, seconds: float) -> list[tuple[int, float, str | None]]:
    view = b.view(at(seconds))
    found = [q for q in view.queues if q.queue == queue]
    if not found:
        return []
    return [(c.position, c.wait_seconds, c.category) for c in found[0].callers]


def test_callers_wait_in_asterisks_order_and_close_the_gap_when_one_leaves() -> None:
    b = board()
    b.apply([started("1"), IvrVariableSet("1", "category", "emergency", at(1)),
             QueueJoined("1", "medical", 1, at(2)),
             started("2"), QueueJoined("2", "medical", 2, at(4)),
             started("3"), QueueJoined("3", "medical", 3, at(6))])
    assert waiting(b, "medical", 10) == [(1, 8.0, "emergency"), (2, 6.0, None), (3, 4.0, None)]
    b.apply([QueueLeft("1", "medical", 1, at(11))])
    assert waiting(b, "medical", 12) == [(1, 8.0, None), (2, 6.0, None)]
    b.apply([QueueAbandoned("3", "medical", 3, 2, 7, at(13))])
    assert waiting(b, "medical", 14) == [(1, 10.0, None)]
    b.apply([OperatorAnswered("2", "medical", A, 12, 1, at(16))])
    assert waiting(b, "medical", 17) == []


def test_a_priority_caller_goes_ahead_of_those_already_waiting() -> None:
    b = board()
    b.apply([QueueJoined("1", "fire", 1, at(0)), QueueJoined("2", "fire", 2, at(1)),
             QueueJoined("vip", "fire", 1, at(2))])
    view = b.view(at(3))
    assert [c.joined_at for c in view.queues[0].callers] == [at(2), at(0), at(1)]


def test_a_hang_up_removes_the_caller_from_every_queue() -> None:
    b = board()
    b.apply([started("1"), QueueJoined("1", "medical", 1, at(1)),
             QueueJoined("1", "all-operators", 1, at(61)), started("2"),
             QueueJoined("2", "fire", 1, at(2))])
    b.apply([CallEnded("1", 16, "Normal Clearing", at(70)), CallVanished("2", at(70))])
    assert b.view(at(71)).queues == []


def test_longest_wait_across_queues() -> None:
    b = board()
    assert b.view(at(0)).longest_wait is None
    b.apply([QueueJoined("1", "medical", 1, at(5)), QueueJoined("2", "fire", 1, at(2)),
             QueueJoined("3", "fire", 2, at(8))])
    assert b.view(at(10)).longest_wait == ("fire", 8.0)


def test_operator_states_across_their_queues() -> None:
    b = board()
    b.apply([member(A, "medical", "idle", 0), member(A, "all-operators", "idle", 0),
             member(B, "fire", "idle", 0), member(B, "all-operators", "idle", 0)])
    view = b.view(at(1))
    assert [(o.operator, o.state) for o in view.operators] == [
        (A, OperatorState.IDLE), (B, OperatorState.IDLE)]
    assert view.counts[OperatorState.IDLE] == 2
    b.apply([member(A, "medical", "ringing", 2)])
    assert b.operator_view(A, at(3)).state is OperatorState.RINGING
    b.apply([member(A, "medical", "talking", 4), member(A, "all-operators", "talking", 4)])
    talking = b.operator_view(A, at(30))
    assert (talking.state, talking.since) == (OperatorState.TALKING, at(4))
    b.apply([member(B, "fire", "unavailable", 5)])
    assert b.operator_view(B, at(6)).state is OperatorState.UNAVAILABLE


def test_paused_only_when_paused_in_every_queue_and_with_its_reason() -> None:
    b = board()
    b.apply([member(A, "medical", "idle", 0), member(A, "all-operators", "idle", 0)])
    b.apply([member(A, "medical", "paused", 10, paused=True, reason="break")])
    assert b.operator_view(A, at(11)).state is OperatorState.IDLE  # all-operators still rings
    b.apply([member(A, "all-operators", "paused", 10, paused=True, reason="break")])
    paused = b.operator_view(A, at(11))
    assert (paused.state, paused.reason, paused.since) == (OperatorState.PAUSED, "break", at(10))
    view = b.view(at(11))
    assert [(q.queue, q.members, q.available) for q in view.queues] == [
        ("all-operators", 1, 0), ("medical", 1, 0)]


def test_wrapup_after_a_call_runs_out_by_itself() -> None:
    b = board()
    b.apply([member(A, "medical", "talking", 0)])
    b.apply([OperatorCompleted("1", "medical", A, 3, 60, "caller", at(60)),
             member(A, "medical", "idle", 60)])
    assert b.operator_view(A, at(62)).state is OperatorState.WRAPUP
    assert b.next_change(at(62)) == at(65)
    assert b.operator_view(A, at(65)).state is OperatorState.IDLE
    assert b.next_change(at(65)) is None
    assert b.view(at(62)).queues[0].available == 0


def test_wrapup_is_the_answering_queues_own_when_an_admin_set_one() -> None:
    # app_queue does not ring an operator for the wrap-up of the queue they answered in: a
    # fire queue with 30 s is 30 s on the board too, the other queues keep the file's 5 s.
    b = board()
    b.set_wrapups({"fire": 30})
    b.apply([member(A, "fire", "talking", 0), member(B, "medical", "talking", 0)])
    b.apply([OperatorCompleted("1", "fire", A, 3, 60, "caller", at(60)),
             OperatorCompleted("2", "medical", B, 3, 60, "caller", at(60)),
             member(A, "fire", "idle", 60), member(B, "medical", "idle", 60)])
    assert b.operator_view(A, at(80)).state is OperatorState.WRAPUP
    assert b.operator_view(B, at(80)).state is OperatorState.IDLE
    assert b.next_change(at(62)) == at(65)
    assert b.next_change(at(66)) == at(90)
    assert b.operator_view(A, at(90)).state is OperatorState.IDLE
    # A change applies to calls completed from then on, as app_queue's does.
    b.set_wrapups({})
    assert b.operator_view(A, at(85)).state is OperatorState.WRAPUP


def test_an_operator_who_leaves_a_three_way_call_wraps_up_from_the_leave_once() -> None:
    # "Keluar" (or a hang-up) in a three-way call: Asterisk frees the operator's phone there,
    # while the caller talks on with the agency; its completion comes at the call's end. The
    # board had them "Siap" until then, and then in a whole wrap-up from the call's end.
    b = board()
    b.set_wrapups({"fire": 30})
    b.apply([member(A, "fire", "idle", 0), OperatorAnswered("1", "fire", A, 3, 1, at(10)),
             member(A, "fire", "talking", 10)])
    b.apply([member(A, "fire", "idle", 40), OperatorLeft("1", A, at(40))])
    left = b.operator_view(A, at(45))
    assert (left.state, left.since) == (OperatorState.WRAPUP, at(40))
    assert b.next_change(at(45)) == at(70)  # the fire queue's 30 s, from the leave
    assert b.view(at(45)).queues[0].available == 0
    assert b.operator_view(A, at(70)).state is OperatorState.IDLE
    b.apply([OperatorCompleted("1", "fire", A, 3, 90, "caller", at(100))])
    assert b.operator_view(A, at(101)).state is OperatorState.IDLE
    assert b.next_change(at(101)) is None


def test_a_call_taken_after_leaving_a_three_way_call_keeps_its_own_wrapup() -> None:
    # The operator left call 1 at 40 and took and completed call 2 while call 1's caller
    # still talked to the agency: call 1's end does not restart (nor undo) call 2's wrap-up.
    b = board()
    b.apply([OperatorAnswered("1", "medical", A, 3, 1, at(10)),
             member(A, "medical", "talking", 10), OperatorLeft("1", A, at(40)),
             member(A, "medical", "idle", 40), OperatorAnswered("2", "medical", A, 3, 1, at(50)),
             member(A, "medical", "talking", 50),
             OperatorCompleted("2", "medical", A, 3, 10, "caller", at(60)),
             member(A, "medical", "idle", 60),
             OperatorCompleted("1", "medical", A, 3, 52, "caller", at(62))])
    view = b.operator_view(A, at(63))
    assert (view.state, view.since) == (OperatorState.WRAPUP, at(60))
    assert b.next_change(at(63)) == at(65)


def test_an_operator_out_of_every_queue_who_leaves_a_three_way_call_is_off_the_board() -> None:
    b = board()
    b.apply([member(A, "medical", "ringing", 0), member(A, "medical", LOGGED_OUT, 1),
             OperatorAnswered("1", "medical", A, 3, 2, at(2))])
    assert [op.operator for op in b.view(at(3)).operators] == [A]
    b.apply([OperatorLeft("1", A, at(20))])
    assert b.view(at(21)).operators == []


def test_a_three_way_call_left_before_a_restart_ends_with_no_new_wrapup() -> None:
    # The line restarted between the leave and the call's end: the database's picture says
    # the operator left (their talk ended there), so Asterisk's completion starts no wrap-up.
    b = board()
    b.seed(LivePicture({}, [], [member(A, "fire", "idle", 40)], left=[Talking(A, "1", at(40))]))
    b.apply([OperatorCompleted("1", "fire", A, 3, 90, "caller", at(100))])
    assert b.operator_view(A, at(101)).state is OperatorState.IDLE
    # On a cluster node, only this node's calls' leaves are its facts to cap.
    b = board()
    b.seed(LivePicture({}, [], [member(A, "fire", "idle", 40)],
                       left=[Talking(A, "node2-1.1", at(40))]), node="node1")
    b.apply([OperatorCompleted("node2-1.1", "fire", A, 3, 90, "caller", at(100))])
    assert b.operator_view(A, at(101)).state is OperatorState.WRAPUP


def test_a_wrapup_pause_shows_as_wrapup() -> None:
    b = board()
    b.apply([member(A, "medical", "paused", 0, paused=True, reason="wrapup")])
    view = b.operator_view(A, at(100))
    assert (view.state, view.reason) == (OperatorState.WRAPUP, "wrapup")


def test_a_logged_out_operator_leaves_the_board() -> None:
    b = board()
    b.apply([member(A, "medical", "idle", 0), member(A, "fire", "idle", 0)])
    b.apply([member(A, "medical", "logged_out", 5)])
    assert b.operator_view(A, at(6)).queues == ["fire"]
    b.apply([member(A, "fire", "logged_out", 6)])
    assert b.view(at(7)).operators == []


def test_a_late_older_report_does_not_undo_a_newer_one() -> None:
    b = board()
    b.apply([member(A, "medical", "talking", 10), member(A, "medical", "idle", 5)])
    assert b.operator_view(A, at(11)).state is OperatorState.TALKING


def test_a_resync_replaces_what_changed_while_away_and_keeps_running_clocks() -> None:
    b = board()
    b.apply([member(A, "medical", "talking", 0), member(B, "medical", "idle", 0),
             QueueJoined("gone", "medical", 1, at(1)), QueueJoined("still", "medical", 2, at(2))])
    # Away: "gone" was answered, B logged out, a new caller joined. The resync's estimate of
    # a join (now - Wait) is rounded to seconds; a known wait keeps its own start.
    b.resync(QueueSnapshot(
        waiting=(QueueJoined("still", "medical", 1, at(3)),
                 QueueJoined("new", "medical", 2, at(30))),
        members=(member(A, "medical", "talking", 40),)))
    assert waiting(b, "medical", 40) == [(1, 38.0, None), (2, 10.0, None)]
    view = b.view(at(40))
    assert [(o.operator, o.since) for o in view.operators] == [(A, at(0))]


def test_a_reconnection_keeps_each_operators_time_in_an_unchanged_state() -> None:
    # As the listener hands a resync over: its facts first (every member listed again,
    # stamped with the resync's instant), then the whole picture. Only a change of state
    # starts a new "since": a supervisor watching "jeda 25:00" must not see 0:00 after a
    # reconnection, nor after a second one.
    replies = resync_replies(FIXTURES / "ami_synthetic_resync.txt")
    clock = [T0]
    tracker = CallTracker(clock=lambda: clock[0])
    b = board()
    for minutes in (0, 4, 9):
        clock[0] = T0 + timedelta(minutes=minutes)
        outcome = tracker.resync(*replies)
        b.apply(outcome.facts)
        b.resync(outcome.queues)
    assert {(o.operator, o.state, o.since) for o in b.view(clock[0]).operators} == {
        (A, OperatorState.TALKING, T0), (B, OperatorState.PAUSED, T0),
        ("PJSIP/op1003", OperatorState.UNAVAILABLE, T0)}
    # A new state starts its own clock; the same state reported again live keeps it.
    b.apply([member(A, "medical", "idle", 600), member(A, "all-operators", "idle", 600),
             member(A, "medical", "idle", 620), member(A, "all-operators", "idle", 620)])
    assert (b.operator_view(A, at(630)).state, b.operator_view(A, at(630)).since) == (
        OperatorState.IDLE, at(600))


def test_a_resync_that_could_not_be_trusted_keeps_the_board() -> None:
    b = board()
    b.apply([QueueJoined("1", "medical", 1, at(1))])
    b.resync(None)
    assert len(waiting(b, "medical", 2)) == 1


def test_the_database_seeds_the_board_only_before_the_first_resync() -> None:
    picture = LivePicture(
        calls={"1": CallInfo("119", "emergency")},
        waiting=[QueueJoined("1", "medical", 1, at(0))],
        members=[member(A, "medical", "idle", 0)])
    b = board()
    assert b.seed(picture)
    assert waiting(b, "medical", 5) == [(1, 5.0, "emergency")]
    assert b.view(at(5)).queues[0].callers[0].line == "119"
    later = board()
    later.resync(QueueSnapshot((), ()))
    assert not later.seed(picture)
    assert later.view(at(5)).queues == []


def test_the_tracker_gives_the_whole_queue_picture_even_for_known_calls() -> None:
    replies = resync_replies(FIXTURES / "ami_synthetic_resync.txt")
    tracker = CallTracker(clock=lambda: T0)
    first = tracker.resync(*replies)
    again = tracker.resync(*replies)
    assert first.queues is not None and again.queues is not None
    assert first.queues.waiting  # the fixture has a caller waiting in medical
    # The second resync restores nothing (all known) but still reports the whole picture.
    assert not any(isinstance(f, QueueJoined) for f in again.facts)
    assert again.queues == first.queues
    assert {m.operator for m in first.queues.members} >= {A, B}


# -- a cluster node's board: the other nodes' waiting callers, followed from the database ----

def changed(*waiting: QueueJoined, calls: tuple[str, ...] = (), whole: bool = False,
            info: dict[str, CallInfo] | None = None) -> ChangedCalls:
    """What the wallboard service reads of the other nodes' calls: ``calls`` changed (their
    rows only matter by id here), ``waiting`` still in a queue."""
    rows = [LiveCall(call_id, None, None, None, None, None, None, None, None, None, False,
                     None, None, None) for call_id in calls]
    return ChangedCalls(at(0), rows, list(waiting), info or {}, whole=whole)


def callers(b: LiveBoard, queue: str, seconds: float) -> list[tuple[int, str | None, float]]:
    found = [q for q in b.view(at(seconds)).queues if q.queue == queue]
    return [(c.position, c.node, c.wait_seconds) for c in (found[0].callers if found else [])]


def test_the_other_nodes_callers_wait_in_line_with_this_nodes_by_when_they_joined() -> None:
    b = board()
    b.apply([started("node1-1.1"), QueueJoined("node1-1.1", "medical", 1, at(2)),
             started("node1-1.2"), QueueJoined("node1-1.2", "medical", 2, at(8))])
    assert b.follow(changed(QueueJoined("node2-1.1", "medical", 1, at(5)),
                            QueueJoined("node2-1.2", "medical", 2, at(1)),
                            QueueJoined("node3-1.1", "fire", 1, at(3)),
                            info={"node2-1.1": CallInfo("119", "emergency")}))
    assert callers(b, "medical", 10) == [(1, "node2", 9.0), (2, "node1", 8.0),
                                         (3, "node2", 5.0), (4, "node1", 2.0)]
    assert callers(b, "fire", 10) == [(1, "node3", 7.0)]
    shown = b.view(at(10)).queues[1].callers[2]
    assert (shown.line, shown.category) == ("119", "emergency")
    assert b.view(at(10)).longest_wait == ("medical", 9.0)
    # The same read again (the follow's overlap) moves nothing.
    assert not b.follow(changed(QueueJoined("node2-1.1", "medical", 1, at(5)),
                                QueueJoined("node2-1.2", "medical", 2, at(1)),
                                QueueJoined("node3-1.1", "fire", 1, at(3)),
                                info={"node2-1.1": CallInfo("119", "emergency")}))


def test_an_answer_abandon_or_end_on_the_other_node_takes_its_caller_off() -> None:
    b = board()
    b.follow(changed(QueueJoined("node2-1.1", "medical", 1, at(1)),
                     QueueJoined("node2-1.2", "medical", 2, at(2)),
                     QueueJoined("node2-1.3", "fire", 1, at(3))))
    # node2-1.1 answered: its row changed, no longer waiting; the others did not change.
    assert b.follow(changed(calls=("node2-1.1",)))
    assert callers(b, "medical", 5) == [(1, "node2", 3.0)]
    assert [q.queue for q in b.view(at(5)).queues] == ["fire", "medical"]
    # Moved on to the overflow queue: one visit closed, another open.
    assert b.follow(changed(QueueJoined("node2-1.2", "all-operators", 1, at(6)),
                            calls=("node2-1.2",)))
    assert callers(b, "medical", 7) == []
    assert callers(b, "all-operators", 7) == [(1, "node2", 1.0)]
    assert b.follow(changed(calls=("node2-1.2", "node2-1.3")))
    assert b.view(at(8)).queues == []


def test_a_whole_read_replaces_every_other_nodes_caller() -> None:
    b = board()
    b.follow(changed(QueueJoined("node2-1.1", "medical", 1, at(1))))
    assert b.follow(changed(QueueJoined("node3-1.1", "fire", 1, at(2)), whole=True))
    assert callers(b, "medical", 3) == []
    assert callers(b, "fire", 3) == [(1, "node3", 1.0)]


def test_a_lost_nodes_callers_leave_the_board_and_stay_off_until_it_is_back() -> None:
    b = board()
    b.apply([QueueJoined("node1-1.1", "medical", 1, at(3))])
    b.follow(changed(QueueJoined("node2-1.1", "medical", 1, at(1)),
                     QueueJoined("node3-1.1", "medical", 1, at(2))))
    assert b.node_lost("node2")
    assert callers(b, "medical", 4) == [(1, "node3", 2.0), (2, "node1", 1.0)]
    assert not b.node_lost("node2")
    # Its rows stay open in the database: a whole read (a new shift's seed) finds them.
    b.follow(changed(QueueJoined("node2-1.1", "medical", 1, at(1)),
                     QueueJoined("node3-1.1", "medical", 1, at(2)), whole=True))
    assert [node for _, node, _ in callers(b, "medical", 4)] == ["node3", "node1"]
    b.node_back("node2")
    b.follow(changed(QueueJoined("node2-1.9", "medical", 1, at(4))))
    assert [node for _, node, _ in callers(b, "medical", 5)] == ["node3", "node1", "node2"]


def test_a_cluster_nodes_seed_keeps_its_own_callers_apart_from_the_others() -> None:
    picture = LivePicture(
        calls={"node1-1.1": CallInfo("112", None), "node2-1.1": CallInfo("119", "fire")},
        waiting=[QueueJoined("node1-1.1", "medical", 1, at(0)),
                 QueueJoined("node2-1.1", "medical", 2, at(1))],
        members=[])
    b = board()
    assert b.seed(picture, node="node1")
    assert callers(b, "medical", 5) == [(1, "node1", 5.0), (2, "node2", 4.0)]
    # This node's resync replaces its own callers only.
    b.resync(QueueSnapshot((), ()))
    assert callers(b, "medical", 5) == [(1, "node2", 4.0)]
    # After a resync the seed is not taken, but the other nodes' callers still are.
    later = board()
    later.resync(QueueSnapshot((), ()))
    assert not later.seed(picture, node="node1")
    assert callers(later, "medical", 5) == [(1, "node2", 4.0)]


def test_a_single_nodes_callers_carry_no_node() -> None:
    b = board()
    b.apply([QueueJoined("1741600400.1", "medical", 1, at(0))])
    assert callers(b, "medical", 1) == [(1, None, 1.0)]


def test_a_call_completed_on_another_node_starts_its_operators_wrapup_here() -> None:
    b = board()
    b.apply([member(A, "medical", "idle", 0)])
    done = LiveCall("node2-1.1", at(0), None, None, "medical", at(1), at(2), at(60), None,
                    at(60), False, 1, 58, None, A)
    assert b.follow(ChangedCalls(at(61), [done]))
    assert b.operator_view(A, at(62)).state is OperatorState.WRAPUP
    assert b.next_change(at(62)) == at(65)
    assert not b.follow(ChangedCalls(at(62), [done]))  # read again: nothing moves
    # The wrap-up recorded with the call's answer (its queue's, set by an admin) counts.
    later = replace(done, call_id="node2-1.3", completed_at=at(70), wrapup_seconds=30)
    assert b.follow(ChangedCalls(at(71), [later]))
    assert b.next_change(at(71)) == at(100)
    # An operator not on this board (not in its queues) is not made up.
    other = LiveCall("node2-1.2", at(0), None, None, "fire", at(1), at(2), at(60), None,
                     at(60), False, 1, 58, None, B)
    assert not b.follow(ChangedCalls(at(61), [other]))
    assert [o.operator for o in b.view(at(62)).operators] == [A]


def test_a_call_two_operators_answered_on_another_node_wraps_up_each_after_their_part(
        ) -> None:
    """A answered and blind-transferred (done at 40 s); the caller queued again and B
    answered, done at 200 s. The row names A, with B's completion: A is not put back into
    wrap-up at B's end, B wraps up after their part with their queue's recorded wrap-up."""
    b = board()
    b.apply([member(A, "medical", "idle", 0), member(B, "medical", "idle", 0)])
    parts = (LiveAnswer(A, at(2), at(40), 38, 0), LiveAnswer(B, at(90), at(200), 110, 0, 30))
    row = LiveCall("node2-1.4", at(0), None, None, "medical", at(1), at(2), at(200), None,
                   at(200), False, 1, 110, None, A, answers=parts)
    assert b.follow(ChangedCalls(at(201), [row]))
    assert b.operator_view(B, at(202)).state is OperatorState.WRAPUP
    assert b.next_change(at(202)) == at(230)
    assert b.operator_view(A, at(202)).state is OperatorState.IDLE


def answered_after_logging_out() -> list[AmiEvent]:
    """Asterisk's events for an operator who leaves the queue while its call rings at their
    phone, then answers: ``QueueMemberRemoved`` between the ringing and ``AgentConnect``, and
    no member state after it (the member is gone)."""
    call = events(FIXTURES / "ami_synthetic_call_answered.txt")
    ringing = next(i for i, e in enumerate(call) if e["Event"] == "QueueMemberStatus")
    removed = {**call[ringing], "Event": "QueueMemberRemoved",
               "Timestamp": "1732345684.000000"}
    return [e for e in [*call[:ringing + 1], removed, *call[ringing + 1:]]
            if e is removed or e["Event"] != "QueueMemberStatus"
            or float(str(e["Timestamp"])) < float(str(removed["Timestamp"]))]


def test_an_operator_who_answers_after_logging_out_is_shown_talking() -> None:
    b = board()
    t = CallTracker(clock=lambda: T0)
    stream = answered_after_logging_out()
    connect = next(i for i, e in enumerate(stream) if e["Event"] == "AgentConnect")
    complete = next(i for i, e in enumerate(stream) if e["Event"] == "AgentComplete")
    for event in stream[:connect]:
        b.apply(t.handle(event))
    logged_out = datetime(2024, 11, 23, 7, 8, 4, tzinfo=UTC)
    assert b.view(logged_out).operators == []  # out of the queue, ringing: not taking calls
    (answered,) = [f for f in t.handle(stream[connect]) if isinstance(f, OperatorAnswered)]
    b.apply([answered])
    for event in stream[connect + 1:complete]:
        b.apply(t.handle(event))
    view = b.view(answered.at + timedelta(seconds=30))
    assert [(o.operator, o.state, o.since, o.queues) for o in view.operators] == [
        (A, OperatorState.TALKING, answered.at, [])]
    assert view.counts[OperatorState.TALKING] == 1
    assert [q.members for q in view.queues] == []  # a member of no queue
    for event in stream[complete:]:
        b.apply(t.handle(event))
    assert b.view(answered.at + timedelta(seconds=60)).operators == []


def test_an_operator_out_of_every_queue_leaves_the_board_with_the_callers_hang_up() -> None:
    b = board()
    b.apply([member(A, "medical", "ringing", 0), member(A, "medical", "logged_out", 1),
             OperatorAnswered("1", "medical", A, 3, 2, at(2))])
    assert b.operator_view(A, at(5)).state is OperatorState.TALKING
    b.resync(QueueSnapshot((), ()))  # Asterisk lists them in no queue: still on the call
    assert [o.operator for o in b.view(at(6)).operators] == [A]
    b.apply([CallEnded("1", 16, "Normal Clearing", at(40))])  # AgentComplete was lost
    assert b.view(at(41)).operators == []
    b.apply([OperatorAnswered("2", "fire", A, 3, 2, at(50))])
    b.apply([CallVanished("2", at(60))])
    assert b.view(at(61)).operators == []


def test_a_member_on_a_call_keeps_the_state_of_their_queues() -> None:
    b = board()
    b.apply([member(A, "medical", "talking", 0),
             OperatorAnswered("1", "medical", A, 3, 2, at(0)),
             member(A, "medical", "paused", 10, paused=True, reason="break")])
    view = b.operator_view(A, at(11))
    assert (view.state, view.queues) == (OperatorState.PAUSED, ["medical"])


def test_the_database_seeds_an_operator_on_a_call_out_of_every_queue() -> None:
    picture = LivePicture(calls={"1": CallInfo("112", None)}, waiting=[], members=[],
                          talking=[Talking(A, "1", at(3))])
    b = board()
    assert b.seed(picture)
    assert [(o.operator, o.state, o.since) for o in b.view(at(9)).operators] == [
        (A, OperatorState.TALKING, at(3))]
