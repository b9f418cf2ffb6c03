"""``siaga112 demo`` started while another demo (left running with ``--keep-running``) or
``siaga112 serve`` holds the line's FastAGI port: refused in one line before the lab is
touched. It used to restart the lab's Asterisk under the running demo, fail on the port, and
stop the lab, leaving the running demo's console without an Asterisk."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from telephony.callpath import LineStartError
from telephony.lab.demo import run_demo
from telephony.settings import Settings


async def test_a_second_demo_refuses_and_leaves_the_running_ones_lab_alone(
        tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()  # a lab touched at all would say this rootfs has no Asterisk
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as running_line:
        running_line.bind(("127.0.0.1", 0))
        running_line.listen()
        port = running_line.getsockname()[1]
        settings = Settings(agi_port=port, lab_rootfs=rootfs, lab_instance="demo-refusal",
                            state_dir=tmp_path / "state")
        with pytest.raises(LineStartError) as refused:
            await run_demo(settings)
    assert str(refused.value).startswith(f"FastAGI 127.0.0.1:{port} sudah dipakai")
    assert "Asterisk lab tidak disentuh" in str(refused.value)
    assert list(rootfs.iterdir()) == []
