"""The mirror the lab's root filesystem is built from is the one the host's apt uses: the
deb822 file of Debian 12's cloud images, or the one-line sources.list its installer writes
(with the mirror chosen at install time, often a local one where only it is reachable)."""

from __future__ import annotations

from pathlib import Path

from telephony.lab.chroot import DEFAULT_MIRROR, debian_mirror

# What Debian 12's installer writes with a local mirror chosen (its DVD line disabled).
INSTALLER_SOURCES_LIST = """\
#deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_ - Official amd64 DVD Binary-1]/ bookworm main

deb http://security.debian.org/debian-security bookworm-security main non-free-firmware
deb-src http://security.debian.org/debian-security bookworm-security main non-free-firmware

deb http://kartolo.sby.datautama.net.id/debian/ bookworm main non-free-firmware
deb-src http://kartolo.sby.datautama.net.id/debian/ bookworm main non-free-firmware
"""


def apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_the_installers_one_line_sources_list_gives_its_mirror(tmp_path: Path) -> None:
    assert (debian_mirror(apt_dir(tmp_path, {"sources.list": INSTALLER_SOURCES_LIST}))
            == "http://kartolo.sby.datautama.net.id/debian/")


def test_options_in_brackets_and_comments_are_read_past(tmp_path: Path) -> None:
    text = ("deb-src http://src.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            "http://apt-cache.local:3142/debian bookworm main  # the site's cache\n")
    assert (debian_mirror(apt_dir(tmp_path, {"sources.list": text}))
            == "http://apt-cache.local:3142/debian")


def test_a_deb822_file_comes_first(tmp_path: Path) -> None:
    files = {
        "sources.list.d/debian.sources": (
            "Types: deb\nURIs: http://deb.debian.org/debian-security\n"
            "Suites: bookworm-security\n\n"
            "Types: deb\nURIs: http://mirror.unej.ac.id/debian\nSuites: bookworm\n"),
        "sources.list": INSTALLER_SOURCES_LIST,
    }
    assert debian_mirror(apt_dir(tmp_path, files)) == "http://mirror.unej.ac.id/debian"


def test_only_security_or_nothing_listed_gives_the_default(tmp_path: Path) -> None:
    only_security = ("#deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
                     "deb http://security.debian.org/debian-security bookworm-security main\n")
    assert debian_mirror(apt_dir(tmp_path, {"sources.list": only_security})) == DEFAULT_MIRROR
    assert debian_mirror(tmp_path / "missing") == DEFAULT_MIRROR
