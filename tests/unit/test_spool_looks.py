"""The spool looks at its directories only when it may have something: the recorder asks it
before every batch whether facts wait, and in a surge a glob of two directories per batch was
system calls on the AMI thread. The answer stays that of the disk."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from telephony.calls.spool import FactSpool
from tests.support.calls import call_facts


def test_an_empty_spool_stays_known_empty_until_it_writes(tmp_path: Path) -> None:
    spool = FactSpool(tmp_path / "spool", fallback=tmp_path / "fallback")
    with mock.patch.object(Path, "glob", autospec=True, side_effect=Path.glob) as looks:
        assert spool.is_empty()
        looked = looks.call_count
        assert looked > 0
        assert spool.is_empty()
        assert spool.is_empty()
        assert looks.call_count == looked  # nothing written since: no look

        spool.append(call_facts("sl.1"))
        assert not spool.is_empty()  # looked again after the write
        assert looks.call_count > looked
        for number in spool.seal():
            assert spool.read(number)
            spool.remove(number)
        assert spool.is_empty()


def test_segments_a_previous_process_left_are_found(tmp_path: Path) -> None:
    first = FactSpool(tmp_path / "spool")
    first.append(call_facts("sl.2"))
    again = FactSpool(tmp_path / "spool")  # the line restarted
    assert not again.is_empty()
    for number in again.seal():
        again.remove(number)
    assert again.is_empty()
