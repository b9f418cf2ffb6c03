"""The console's editors as data (pure: no I/O): the choices their forms offer, and the
document an admin's posted form makes of the version they edited.

The menu form edits what an admin changes day to day: every prompt's text, each menu's wait
and attempts, where silence goes, where each key goes (an existing route or a sub-menu; empty
removes the key), one new key per menu, and the screening prompt's wait. The screening form
edits the thresholds and priorities. Whatever else (new queues, lines, menus; the weights) is
edited as JSON. The result is validated as any document is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from ivr.menu import DTMF_KEYS
from telephony.admin.errors import InvalidConfig
from telephony.admin.versions import CATEGORY_LABELS

ROUTE_PREFIX: Final = "route:"
MENU_PREFIX: Final = "menu:"


def route_value(route: Mapping[str, Any]) -> str:
    """A route as the value of a form's choice."""
    return f"{ROUTE_PREFIX}{route['category']}:{route['skill']}:{route['queue']}"


def route_label(route: Mapping[str, Any]) -> str:
    """A route as the admin reads it in a choice."""
    category = CATEGORY_LABELS.get(route["category"], route["category"])
    return f"antrean {route['queue']} ({category}, keahlian {route['skill']})"


def route_choices(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every distinct route of the menu, as (value, label), by queue."""
    routes: list[Mapping[str, Any]] = []
    for entry in document["lines"].values():
        if "route" in entry:
            routes.append(entry["route"])
    for menu in document["menus"].values():
        routes.append(menu["default"])
        routes.extend(o["route"] for o in menu["options"].values() if "route" in o)
    choices = {route_value(r): route_label(r) for r in routes}
    return sorted(choices.items(), key=lambda item: item[1])


def _target(value: str, document: Mapping[str, Any], where: str) -> dict[str, Any]:
    if value.startswith(MENU_PREFIX) and value[len(MENU_PREFIX):] in document["menus"]:
        return {"menu": value[len(MENU_PREFIX):]}
    if value in dict(route_choices(document)):
        category, skill, queue = value[len(ROUTE_PREFIX):].split(":")
        return {"route": {"category": category, "skill": skill, "queue": queue}}
    raise InvalidConfig(f"Tujuan {where} tidak dikenal.", where)


def _number(form: Mapping[str, str], name: str, what: str, *, scale: int = 1) -> int | None:
    raw = form.get(name, "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        return round(float(raw) * scale)
    except ValueError:
        raise InvalidConfig(f"{what} harus berupa angka.", name) from None


def menu_from_form(document: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The menu ``document`` with the form's changes (fields the form left out stay)."""
    new: dict[str, Any] = copy.deepcopy(dict(document))
    for name in document["prompts"]:
        text = form.get(f"prompt.{name}")
        if text is not None:
            new["prompts"][name] = " ".join(text.split())
    for name, menu in new["menus"].items():
        prefix = f"menu.{name}"
        timeout = _number(form, f"{prefix}.timeout", f"Waktu tunggu menu {name}", scale=1000)
        if timeout is not None:
            menu["timeout_ms"] = timeout
        for field, key in (("no_input", "no_input_attempts"), ("invalid", "invalid_attempts")):
            count = _number(form, f"{prefix}.{field}", f"Jumlah tanya menu {name}")
            if count is not None:
                menu[key] = count
        default = form.get(f"{prefix}.default")
        if default:
            target = _target(default, document, f"{prefix}.default")
            if "route" not in target:
                raise InvalidConfig(f"Tanpa tekan di menu {name} harus ke sebuah antrean.",
                                    f"{prefix}.default")
            menu["default"] = target["route"]
        for key in list(menu["options"]):
            value = form.get(f"option.{name}.{key}")
            if value is None:
                continue
            if value == "":
                del menu["options"][key]
            else:
                menu["options"][key] = _target(value, document, f"option.{name}.{key}")
        key, chosen = form.get(f"new.{name}.key", ""), form.get(f"new.{name}.target", "")
        if key or chosen:
            if key not in DTMF_KEYS or not chosen:
                raise InvalidConfig(f"Tombol baru menu {name}: pilih tombol dan tujuannya.",
                                    f"new.{name}.key")
            if key in menu["options"]:
                raise InvalidConfig(f"Tombol {key} sudah dipakai di menu {name}.",
                                    f"new.{name}.key")
            menu["options"][key] = _target(chosen, document, f"new.{name}.target")
    wait = _number(form, "screening.wait", "Waktu tunggu penyaringan", scale=1000)
    if wait is not None and "screening" in new:
        new["screening"]["wait_ms"] = wait
    return new


# The screening settings the form shows, with their labels; the rest is edited as JSON.
SCREENING_FIELDS: Final[tuple[tuple[str, str, type], ...]] = (
    ("lower_priority_threshold", "Skor untuk menurunkan prioritas (0-1)", float),
    ("screening_threshold", "Skor untuk memutar pesan penyaringan (0-1)", float),
    ("normal_priority", "Prioritas antrean normal (paling tinggi 998)", int),
    ("lowered_priority", "Prioritas yang diturunkan", int),
    ("priority_floor", "Prioritas terendah panggilan darurat dan 119", int),
)


def screening_from_form(document: Mapping[str, Any], form: Mapping[str, str]
                        ) -> dict[str, Any]:
    """The screening ``document`` with the form's thresholds and priorities."""
    new = dict(document)
    for name, label, kind in SCREENING_FIELDS:
        raw = form.get(name, "").strip().replace(",", ".")
        if not raw:
            continue
        try:
            new[name] = float(raw) if kind is float else int(raw)
        except ValueError:
            raise InvalidConfig(f"{label}: harus berupa angka"
                                f"{'' if kind is float else ' bulat'}.", name) from None
    return new
