"""The channels alive in Asterisk now (``CoreShowChannels``), and finding an operator's.

Transfers, conferences and a supervisor's listening act on the operator's channel of a call,
whose name Asterisk made up when Queue() dialled the operator (``PJSIP/op2001-0000002a``). The
line asks Asterisk for it at the moment of the action rather than remembering it from events:
what Asterisk answers is the truth at that moment, and the call tracker stays about calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telephony.ami.actions import AmiActions, AmiListActions
from telephony.ami.originate import printable

UP = "Up"  # ChannelStateDesc of an answered channel


@dataclass(frozen=True)
class LiveChannel:
    """One ``CoreShowChannel`` entry."""

    channel: str
    uniqueid: str
    linkedid: str
    state: str  # ChannelStateDesc: Up, Ring, Ringing ...
    bridge_id: str  # empty when not bridged
    application: str
    caller_number: str
    connected_number: str
    # What the application runs with (ChanSpy's spied channel and options, for one).
    application_data: str = ""

    @property
    def interface(self) -> str:
        """``PJSIP/op2001-0000002a`` -> ``PJSIP/op2001`` (Asterisk appends one ``-`` and a
        hex sequence number to the endpoint's name)."""
        return self.channel.rpartition("-")[0]


def parse_channels(events: Sequence[Any]) -> list[LiveChannel]:
    """The ``CoreShowChannel`` events of a reply (anything else in it is skipped)."""
    found = []
    for event in events:
        if str(event.get("Event", "")).lower() != "coreshowchannel":
            continue
        found.append(LiveChannel(
            channel=str(event.get("Channel", "")), uniqueid=str(event.get("Uniqueid", "")),
            linkedid=str(event.get("Linkedid", "")),
            state=str(event.get("ChannelStateDesc", "")),
            bridge_id=str(event.get("BridgeId", "")),
            application=str(event.get("Application", "")),
            caller_number=str(event.get("CallerIDNum", "")),
            connected_number=str(event.get("ConnectedLineNum", "")),
            application_data=str(event.get("ApplicationData", "")),
        ))
    return found


async def live_channels(ami: AmiListActions) -> list[LiveChannel]:
    """Every channel alive now; raises :class:`~telephony.ami.actions.AmiActionError`."""
    return parse_channels(await ami.send_list_action({"Action": "CoreShowChannels"}))


def operator_channel(channels: Sequence[LiveChannel], interface: str,
                     call_id: str | None = None) -> LiveChannel | None:
    """The answered channel of the operator at ``interface`` (on the call ``call_id``,
    whose channels all carry its Linkedid, when given); None when there is none."""
    for channel in channels:
        if (channel.interface == interface and channel.state == UP
                and (call_id is None or channel.linkedid == call_id)):
            return channel
    return None


async def device_state(ami: AmiActions, device: str) -> str:
    """Asterisk's state of ``device`` (``PJSIP/op1001``) now, as ``DEVICE_STATE`` gives it:
    INUSE, RINGING, NOT_INUSE ... On a cluster node it is the aggregate of every node's
    (res_pjsip_publish_asterisk), which is why a phone busy through another node shows here.
    Raises :class:`~telephony.ami.actions.AmiActionError` when it cannot be read: what an
    unknown state holds up is the caller's to decide."""
    reply = await ami.send_action({"Action": "Getvar", "Variable": f"DEVICE_STATE({device})"})
    return printable(reply.get("Value"))
