"""``siaga112 account create|list|disable|enable|password|rename|role``: how the first admin
comes to exist, and how accounts are kept when the console is out of reach.

Passwords are read from the terminal (twice, not echoed) or, when standard input is not a
terminal, from its first line, so scripts can pipe one in; never from the command line, where
other users of the machine could read it. Output is in Bahasa Indonesia; a refusal
(:class:`~telephony.accounts.model.AccountError`) is printed by the CLI as one line.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

from telephony.accounts.model import InvalidAccountInput, Role
from telephony.accounts.passwords import PasswordHasher
from telephony.accounts.service import CLI_ACTOR, AccountConfig, AccountService
from telephony.db.connection import Database
from telephony.desks.commands import leave_queues
from telephony.desks.service import revoke_browser_phone
from telephony.settings import Settings

T = TypeVar("T")


def read_password(stdin: TextIO | None = None) -> str:
    """A new password from the terminal (asked twice) or from the first line of stdin."""
    source = stdin or sys.stdin
    if not source.isatty():
        return source.readline().removesuffix("\n").removesuffix("\r")
    try:
        first = getpass.getpass("Kata sandi baru: ")
        again = getpass.getpass("Ulangi kata sandi: ")
    except EOFError:  # Ctrl-D at the prompt: the admin gave up, said in one line
        raise InvalidAccountInput("password", "Kata sandi tidak dimasukkan.") from None
    if again != first:
        raise InvalidAccountInput("password", "Kedua kata sandi tidak sama.")
    return first


async def _with_service(settings: Settings, work: Callable[[AccountService], Awaitable[T]]
                        ) -> T:
    database = Database(settings)
    try:
        return await work(AccountService(database, PasswordHasher(),
                                         AccountConfig.from_settings(settings)))
    finally:
        await database.close()


async def create(settings: Settings, username: str, role: str, display_name: str,
                 password: str) -> int:
    """Create an account."""
    account = await _with_service(settings, lambda service: service.create(
        username, role, password, display_name=display_name, actor=CLI_ACTOR))
    print(f"Akun {account.username} ({account.role.label}) dibuat.")
    return 0


async def list_accounts(settings: Settings) -> int:
    """Print every account."""
    accounts = await _with_service(settings, lambda service: service.accounts())
    if not accounts:
        print("Belum ada akun. Buat admin pertama: siaga112 account create NAMA --role admin")
        return 0
    print(f"  {'nama pengguna':20} {'peran':14} {'status':9} nama tampilan")
    for account in accounts:
        status = "aktif" if account.active else "nonaktif"
        print(f"  {account.username:20} {account.role.label:14} {status:9} "
              f"{account.display_name}")
    return 0


async def disable(settings: Settings, username: str) -> int:
    """Disable an account; its sessions end, and its browser softphone's secret."""
    account = await _with_service(
        settings, lambda service: service.disable(username, actor=CLI_ACTOR))
    print(f"Akun {account.username} dinonaktifkan; semua sesinya diakhiri.")
    if account.role is Role.ADMIN:
        accounts = await _with_service(settings, lambda service: service.accounts())
        if not any(other.active and other.role is Role.ADMIN for other in accounts):
            # Allowed (whoever runs this can make an admin again), but never unnoticed: the
            # console's admin pages are now closed to everyone.
            print("Peringatan: tidak ada lagi admin yang aktif. Aktifkan kembali dengan "
                  f"siaga112 account enable {account.username}, atau buat yang baru dengan "
                  "siaga112 account create NAMA --role admin.")
    await _revoke_softphone(settings, account.username, "disable")
    return 0


async def _revoke_softphone(settings: Settings, username: str, why: str) -> None:
    """As at a logout, the softphone of a browser desk stops registering and leaves its
    queues: the sessions just ended, but a desk page left open (or credentials copied out of
    it) would otherwise keep its phone registered, and ringing with callers, with the secret
    it was given."""
    database = Database(settings)
    try:
        revoked = await revoke_browser_phone(database, username, settings.sip_realm)
    finally:
        await database.close()
    if revoked is None:
        return
    interface, queues = revoked
    print(f"Softphone {interface} tidak dapat mendaftar lagi.")
    if not queues:
        return
    failed = await leave_queues(settings, interface, queues)
    if failed is None:
        # Audited as a logout's is (desks.service.DeskService.sign_out), once Asterisk did it.
        await _with_service(settings, lambda service: service.audit(
            actor=CLI_ACTOR, action="desk.leave", object_type="desk", object_id=interface,
            remote_address="", detail={"queues": queues, "why": why}))
        print(f"{interface} keluar dari antrean {', '.join(queues)}.")
    else:
        print(f"{interface} belum keluar dari antrean ({failed}); keluar begitu "
              "pendaftarannya habis.")


async def enable(settings: Settings, username: str) -> int:
    """Let a disabled account log in again."""
    account = await _with_service(
        settings, lambda service: service.enable(username, actor=CLI_ACTOR))
    print(f"Akun {account.username} diaktifkan kembali; masuk dengan kata sandinya yang lama.")
    return 0


async def set_password(settings: Settings, username: str, password: str) -> int:
    """Give an account a new password; its sessions end."""
    account = await _with_service(
        settings, lambda service: service.set_password(username, password, actor=CLI_ACTOR))
    print(f"Kata sandi akun {account.username} diganti; semua sesinya diakhiri.")
    await _revoke_softphone(settings, account.username, "password")
    return 0


def add_parsers(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The arguments of the ``account`` actions but ``desk`` (telephony.desks.commands)."""
    create = actions.add_parser(
        "create", help="create an account; the password is read from the terminal or stdin")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", default="", help="display name")
    actions.add_parser("list", help="list every account")
    for action, text in (("disable", "disable an account and end its sessions"),
                         ("enable", "let a disabled account log in again"),
                         ("password", "set a new password (read from the terminal or stdin)")):
        actions.add_parser(action, help=text).add_argument("username")
    rename_parser = actions.add_parser("rename", help="give an account a new display name")
    rename_parser.add_argument("username")
    rename_parser.add_argument("name", help="the new display name")
    role_parser = actions.add_parser(
        "role", help="give an account another role (its sessions end); an operator made a "
                     "supervisor keeps the phone, without skills (out of the queues first)")
    role_parser.add_argument("username")
    role_parser.add_argument("role", choices=[kind.value for kind in Role])


async def rename(settings: Settings, username: str, display_name: str) -> int:
    """Give an account a new display name."""
    account = await _with_service(settings, lambda service: service.rename(
        username, display_name, actor=CLI_ACTOR))
    print(f"Nama tampilan akun {account.username}: {account.display_name or '-'}.")
    return 0


async def set_role(settings: Settings, username: str, role: str) -> int:
    """Give an account another role; its sessions end."""
    change = await _with_service(settings, lambda service: service.set_role(
        username, role, actor=CLI_ACTOR))
    account = change.account
    if not change.role_changed:
        print(f"Akun {account.username} sudah berperan {account.role.label}; tidak ada yang "
              "diubah.")
        return 0
    print(f"Akun {account.username}: peran {change.before.role.label} -> {account.role.label}; "
          "semua sesinya diakhiri (masuk lagi dengan peran baru).")
    if change.skills_dropped:
        print(f"Keahlian {', '.join(sorted(change.skills_dropped))} dilepas: telepon "
              "supervisor hanya untuk mendengarkan, tidak masuk antrean.")
    return 0
