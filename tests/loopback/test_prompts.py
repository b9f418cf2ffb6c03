"""Prompt audio through the real tools: espeak-ng speaks, pydub converts, sox measures."""

import json
import re
import subprocess
import wave
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from ivr.prompts import PromptError, build_prompts
from telephony.cli import build_prompt_audio
from telephony.settings import Settings


def wav_format(path: Path) -> tuple[int, int, int]:
    with wave.open(str(path)) as audio:
        return audio.getframerate(), audio.getnchannels(), audio.getsampwidth()


def test_generated_prompts_are_8khz_mono_and_regenerated_only_when_changed(
    tmp_path: Path,
) -> None:
    texts = {"salam": "Layanan darurat satu satu dua."}
    first = build_prompts(texts, tmp_path / "out", tmp_path / "recorded", "id")
    assert [(r.name, r.source) for r in first] == [("salam", "generated")]
    assert wav_format(tmp_path / "out" / "salam.wav") == (8000, 1, 2)
    assert 1.0 < first[0].seconds < 6.0

    again = build_prompts(texts, tmp_path / "out", tmp_path / "recorded", "id")
    assert [r.source for r in again] == ["unchanged"]
    edited = build_prompts({"salam": "Layanan darurat."}, tmp_path / "out",
                           tmp_path / "recorded", "id")
    assert [r.source for r in edited] == ["generated"]


def test_an_admins_recording_replaces_the_generated_prompt(tmp_path: Path) -> None:
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    # A "studio" recording: 44.1 kHz stereo, 1.5 s of a tone, made by sox.
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(recorded / "salam.wav"),
                    "synth", "1.5", "sine", "440"], check=True)
    (report,) = build_prompts({"salam": "teks"}, tmp_path / "out", recorded, "id")
    assert (report.source, round(report.seconds, 1)) == ("recorded", 1.5)
    assert wav_format(tmp_path / "out" / "salam.wav") == (8000, 1, 2)


def test_an_unreadable_recording_is_refused(tmp_path: Path) -> None:
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / "salam.wav").write_bytes(b"not audio at all")
    with pytest.raises(PromptError, match="cannot read audio"):
        build_prompts({"salam": "teks"}, tmp_path / "out", recorded, "id")


def test_a_text_that_looks_like_an_option_is_spoken_not_obeyed(tmp_path: Path) -> None:
    # "-f<path>" must be read out as the few words it is, never as espeak-ng's option to read
    # the file (here a long one, a minute of speech).
    secret = tmp_path / "secret.txt"
    secret.write_text("kata sandi rahasia " * 60, encoding="utf-8")
    (report,) = build_prompts({"salam": f"-f{secret}"}, tmp_path / "out", tmp_path / "rec", "id")
    assert report.source == "generated" and report.seconds < 20.0


def test_siaga112_prompts_says_when_the_menu_file_is_too_long_for_the_ivr_session(
        settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A hand-edited menu_file and its recorded prompt: the prompts' lengths are known here
    # first, and the menu can keep a caller past the IVR session's guard.
    document = json.loads(resources.files("ivr").joinpath("menu.json").read_text("utf-8"))
    document["menus"]["utama"]["timeout_ms"] = 19000
    menu = tmp_path / "menu.json"
    menu.write_text(json.dumps(document), encoding="utf-8")
    configured = replace(settings, menu_file=menu)
    configured.prompt_overrides_dir.mkdir(parents=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(
        configured.prompt_overrides_dir / "menu-utama.wav"), "synth", "30", "sine", "440"],
        check=True)
    build_prompt_audio(configured)
    assert re.search(r"^Peringatan: menu jalur 112 bisa menahan penelepon \d+ detik",
                     capsys.readouterr().out, re.MULTILINE)
