"""Every application and function the dialplan uses comes from a module modules.conf loads.

modules.conf loads nothing it does not name (``autoload = no``), and Asterisk hangs a caller
up at a dialplan step whose application does not exist. An ``ExecIf`` (app_exec, not loaded)
once did that to every caller entering the queues; this keeps it from happening again.
"""

from __future__ import annotations

import re
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "asterisk-conf"

# Applications and functions Asterisk's core provides (pbx.c, pbx_builtins.c, pbx_variables.c).
BUILTIN_APPLICATIONS = frozenset({
    "Answer", "BackGround", "Busy", "Congestion", "Goto", "GotoIf", "GotoIfTime", "Hangup",
    "NoOp", "Progress", "Ringing", "Set", "MSet", "Wait", "WaitExten",
})
APPLICATION_MODULES = {
    "AGI": "res_agi", "BackgroundDetect": "app_talkdetect", "Dial": "app_dial",
    "Exec": "app_exec", "ExecIf": "app_exec", "Gosub": "app_stack", "GosubIf": "app_stack",
    "MixMonitor": "app_mixmonitor", "Playback": "app_playback", "Queue": "app_queue",
    "QueueLog": "app_queue", "Read": "app_read", "Return": "app_stack",
    "SendDTMF": "app_senddtmf", "TryExec": "app_exec", "UserEvent": "app_userevent",
}
FUNCTION_MODULES = {
    "CALLERID": "func_callerid", "CHANNEL": "func_channel", "CUT": "func_cut",
    "FIELDQTY": "func_strings", "FILE": "func_env", "FILTER": "func_strings", "IF": "func_logic",
    "ISNULL": "func_logic", "LEN": "func_strings", "LOCAL": "app_stack",
    "PJSIP_HEADER": "res_pjsip_header_funcs",
    "PJSIP_PARSE_URI_FROM": "chan_pjsip", "QUEUE_EXISTS": "app_queue",
    "REGEX": "func_strings", "STRFTIME": "func_strings", "TALK_DETECT": "func_talkdetect",
    "TIMEOUT": "func_timeout",
}


def loaded_modules() -> set[str]:
    text = (CONF / "modules.conf").read_text(encoding="utf-8")
    return set(re.findall(r"^load\s*=>\s*([a-z0-9_]+)\.so\s*$", text, re.MULTILINE))


def used() -> tuple[set[str], set[str]]:
    """The applications and functions of every extension line of extensions.conf."""
    applications: set[str] = set()
    functions: set[str] = set()
    for raw in (CONF / "extensions.conf").read_text(encoding="utf-8").splitlines():
        line = re.match(r"\s*(exten|same)\s*=>\s*(.*)$", raw)
        if line is None:
            continue
        # exten => <extension>,<priority>,<application>; same => <priority>,<application>
        body = line[2].split(",", 2 if line[1] == "exten" else 1)[-1]
        application = re.match(r"\s*([A-Za-z][A-Za-z0-9_]*)", body)
        assert application is not None, raw
        applications.add(application[1])
        functions.update(re.findall(r"\b([A-Z][A-Z_]+)\(", body))
    return applications, functions - applications


def test_the_dialplan_is_read() -> None:
    applications, functions = used()
    assert {"AGI", "Queue", "BackgroundDetect", "GotoIf"} <= applications
    assert {"REGEX", "TIMEOUT"} <= functions


def test_every_application_and_function_has_its_module_loaded() -> None:
    loaded = loaded_modules()
    applications, functions = used()
    unknown = sorted((applications - BUILTIN_APPLICATIONS - set(APPLICATION_MODULES))
                     | (functions - set(FUNCTION_MODULES)))
    assert not unknown, f"say which module provides {unknown} in this test"
    missing = sorted(f"{name} ({APPLICATION_MODULES.get(name) or FUNCTION_MODULES[name]})"
                     for name in (applications - BUILTIN_APPLICATIONS) | functions
                     if (APPLICATION_MODULES.get(name) or FUNCTION_MODULES[name]) not in loaded)
    assert not missing, f"used by extensions.conf, not loaded by modules.conf: {missing}"
