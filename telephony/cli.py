"""Command line: ``siaga112 [--config FILE] [--set name=value ...] COMMAND``.

Console output is in Bahasa Indonesia (the people who run the line read it); logs stay in
English for the engineers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ivr.flow import menu_too_long
from ivr.menu import MenuError, load_menu
from ivr.prompts import PromptError, build_line_prompts
from ivr.source import menu_seconds
from recordings import commands as recording_commands
from telephony.accounts import commands as account_commands
from telephony.accounts.model import AccountError
from telephony.app import serve
from telephony.asterisk.config import check_site_dirs, install_site_config
from telephony.asterisk.errors import AsteriskSiteError
from telephony.backup import commands as backup_commands
from telephony.backup.errors import BackupError
from telephony.callpath import LineStartError
from telephony.core.text import os_reason
from telephony.db.connection import (
    DatabaseUnavailable,
    embedded_cluster,
    line_role,
    run_as_owner,
)
from telephony.db.embedded import EmbeddedDatabaseError
from telephony.db.migrate import MigrationError
from telephony.db.patroni import PatroniConfigError, PatroniNode, render_patroni_config
from telephony.db.roles import prepare_schema
from telephony.desks import commands as desk_commands
from telephony.desks.service import DeskError
from telephony.incidents.config import IncidentConfig
from telephony.kamailio.config import KamailioConfigError, install_kamailio_config
from telephony.lab.chroot import Lab, LabError
from telephony.lab.demo import run_demo
from telephony.screening.score import ScoreConfigError
from telephony.secrets import SecretsError
from telephony.settings import Settings, SettingsError, load_settings
from telephony.surveys.service import SurveyConfig

log = logging.getLogger("telephony.cli")


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SettingsError(f"--set expects name=value, got {pair!r}")
        result[name.strip()] = value
    return result


def check_settings(settings: Settings) -> None:
    """The features' own checks of their settings (words the settings module does not know),
    run before any command so that a bad value stops every command at start, not only the
    one that uses it. Raises :class:`SettingsError`."""
    IncidentConfig.from_settings(settings)
    SurveyConfig.from_settings(settings)


def ensure_database(settings: Settings) -> None:
    """Start the embedded cluster when no external database is configured."""
    if settings.uses_embedded_database:
        cluster = embedded_cluster(settings)
        cluster.ensure_initialized()
        cluster.start()


async def migrate_database(settings: Settings) -> int:
    """As the schema's owner, apply pending migrations and grant the line's role
    (telephony/db/roles.py); returns how many migrations were applied."""
    role = line_role(settings)
    return await run_as_owner(settings, lambda connection: prepare_schema(connection, role))


def _cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    ensure_database(settings)
    applied = asyncio.run(migrate_database(settings))
    print(f"Migrasi selesai: {applied} migrasi baru diterapkan.")
    return 0


def _cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.uses_embedded_database:
        print("Basis data eksternal dikonfigurasi (DSN atau PG*); tidak ada yang dijalankan.")
        return 0
    cluster = embedded_cluster(settings)
    if args.action == "start":
        ensure_database(settings)
        print(f"PostgreSQL tertanam berjalan di 127.0.0.1:{cluster.port} ({cluster.data_dir}).")
    elif args.action == "stop":
        cluster.stop()
        print("PostgreSQL tertanam dihentikan.")
    else:
        print("berjalan" if cluster.is_running() else "berhenti")
    return 0


def build_prompt_audio(settings: Settings) -> None:
    """Generate (or refresh) the prompt audio for the configured menu and the survey."""
    menu = load_menu(settings.menu_file)
    reports = build_line_prompts(menu, settings.prompts_dir, settings.prompt_overrides_dir,
                                 settings.prompt_voice)
    for report in reports:
        print(f"  {report.name:16} {report.source:10} {report.seconds:5.1f} dtk")
    # A hand-edited menu is timed at the line's load with this audio (ivr/source.py); said
    # here too, where its prompts' lengths are first known. Not a failure: asterisk-config
    # runs this at a site's start, and Asterisk must start whatever the menu.
    too_long = menu_too_long(menu, {r.name: r.seconds for r in reports}, menu_seconds(settings))
    if too_long is not None:
        print(f"Peringatan: {too_long} Line menolak suntingan menu ini (menu terakhir yang "
              "baik tetap berjalan); saat line mulai, penelepon menu ini diteruskan ke antrean "
              "di batas sesi IVR.")


def _cmd_prompts(settings: Settings, _: argparse.Namespace) -> int:
    print(f"Rekaman suara IVR di {settings.prompts_dir}:")
    build_prompt_audio(settings)
    return 0


def _cmd_asterisk_config(settings: Settings, args: argparse.Namespace) -> int:
    check_site_dirs(settings)  # before the prompts, which take seconds to generate
    build_prompt_audio(settings)
    site = install_site_config(settings, args.instance_dir, settings.prompts_dir)
    print(f"Konfigurasi Asterisk ditulis ke {site.etc_dir}, rekaman suara IVR ke "
          f"{site.sounds_dir}.")
    return 0


def _cmd_patroni_config(settings: Settings, args: argparse.Namespace) -> int:
    node = PatroniNode(args.name, args.host, args.pg_port, args.rest_port, args.data_dir)
    text = render_patroni_config(settings, node, bin_dir=args.bin_dir)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        # It holds the cluster's passwords: readable by its owner only, from the first byte.
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        # A directory that is missing or not writable: one line, not a traceback.
        raise PatroniConfigError(f"{args.output} tidak dapat ditulis: "
                                 f"{os_reason(exc)}.") from exc
    print(f"Konfigurasi Patroni simpul {node.name} ditulis ke {args.output}.")
    return 0


def _cmd_kamailio_config(settings: Settings, args: argparse.Namespace) -> int:
    cfg = install_kamailio_config(settings, args.out_dir.resolve())
    print(f"Konfigurasi Kamailio ditulis ke {cfg} (node: {', '.join(settings.kamailio_nodes)}).")
    return 0


def _cmd_lab(settings: Settings, args: argparse.Namespace) -> int:
    lab = Lab(settings)
    if args.action == "build":
        print(f"Asterisk lab: root filesystem di {lab.ensure_rootfs()}")
    elif args.action == "start":
        build_prompt_audio(settings)
        lab.start()
        lab.site.install_prompts(settings.prompts_dir)
        print(f"Asterisk lab '{settings.lab_instance}' berjalan: SIP {settings.sip_host}:"
              f"{settings.sip_port}, AMI 127.0.0.1:{settings.ami_port}.")
    elif args.action == "stop":
        lab.stop()
        print(f"Asterisk lab '{settings.lab_instance}' dihentikan.")
    else:
        print("berjalan" if lab.is_running() else "berhenti")
    return 0


def _cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    ensure_database(settings)
    asyncio.run(serve(settings))
    return 0


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    ensure_database(settings)
    asyncio.run(migrate_database(settings))
    build_prompt_audio(settings)
    return asyncio.run(run_demo(settings, keep_running=args.keep_running))


def _cmd_recordings(settings: Settings, args: argparse.Namespace) -> int:
    ensure_database(settings)
    asyncio.run(migrate_database(settings))
    if args.action == "process":
        return asyncio.run(recording_commands.process(settings))
    if args.action == "retention":
        return asyncio.run(recording_commands.retention(settings, dry_run=args.dry_run))
    return asyncio.run(recording_commands.hold(settings, args.call_id, release=args.release))


def _cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    ensure_database(settings)
    return asyncio.run(backup_commands.backup(settings, args.directory))


def _cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    # Restoring into a fresh site: the embedded cluster is created empty, then filled.
    ensure_database(settings)
    return asyncio.run(backup_commands.restore_backup(settings, args.directory,
                                                      force=args.force))


def _cmd_account(settings: Settings, args: argparse.Namespace) -> int:
    ensure_database(settings)
    asyncio.run(migrate_database(settings))
    if args.action == "create":
        password = account_commands.read_password()
        return asyncio.run(account_commands.create(settings, args.username, args.role,
                                                   args.name, password))
    if args.action == "list":
        return asyncio.run(account_commands.list_accounts(settings))
    if args.action == "disable":
        return asyncio.run(account_commands.disable(settings, args.username))
    if args.action == "enable":
        return asyncio.run(account_commands.enable(settings, args.username))
    if args.action == "rename":
        return asyncio.run(account_commands.rename(settings, args.username, args.name))
    if args.action == "role":
        return asyncio.run(account_commands.set_role(settings, args.username, args.role))
    if args.action == "desk":
        return asyncio.run(desk_commands.desk(settings, args.username, args.interface,
                                              args.skill, new_secret=args.new_secret,
                                              phone=args.phone))
    password = account_commands.read_password()
    return asyncio.run(account_commands.set_password(settings, args.username, password))


def _add_patroni_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    patroni = commands.add_parser(
        "patroni-config", help="a PostgreSQL node's Patroni config (primary/replica failover)")
    patroni.add_argument("--name", required=True, help="this node's member name, e.g. pg1")
    patroni.add_argument("--host", required=True,
                         help="the address its PostgreSQL and REST API listen on")
    patroni.add_argument("--pg-port", type=int, default=5432)
    patroni.add_argument("--rest-port", type=int, default=8008)
    patroni.add_argument("--data-dir", type=Path, required=True)
    patroni.add_argument("--bin-dir", type=Path, help="PostgreSQL's binaries (default: found)")
    patroni.add_argument("--output", type=Path, help="file to write (mode 0600); default stdout")
    patroni.set_defaults(handler=_cmd_patroni_config)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(prog="siaga112", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override one setting (repeatable)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        handler=_cmd_migrate)
    db = commands.add_parser("db", help="embedded PostgreSQL: start, stop, status")
    db.add_argument("action", choices=["start", "stop", "status"])
    db.set_defaults(handler=_cmd_db)
    commands.add_parser("prompts", help="generate the IVR prompt audio").set_defaults(
        handler=_cmd_prompts)
    asterisk_config = commands.add_parser(
        "asterisk-config",
        help="a site's Asterisk: render asterisk-conf/ into asterisk_etc_dir, install prompts")
    asterisk_config.add_argument(
        "--instance-dir", required=True,
        help="the directory asterisk.conf puts everything under, as Asterisk sees it")
    asterisk_config.set_defaults(handler=_cmd_asterisk_config)
    _add_patroni_config(commands)
    kamailio_config = commands.add_parser(
        "kamailio-config",
        help="a cluster's SIP front: render kamailio-conf/ and the nodes (cluster_nodes)")
    kamailio_config.add_argument("--out-dir", type=Path, required=True,
                                 help="where kamailio.cfg and dispatcher.list are written")
    kamailio_config.set_defaults(handler=_cmd_kamailio_config)
    lab = commands.add_parser("lab", help="the Asterisk 22 lab: build, start, stop, status")
    lab.add_argument("action", choices=["build", "start", "stop", "status"])
    lab.set_defaults(handler=_cmd_lab)
    commands.add_parser("serve", help="run the FastAGI IVR and the AMI listener").set_defaults(
        handler=_cmd_serve)
    recordings = commands.add_parser("recordings", help="call recordings")
    actions = recordings.add_subparsers(dest="action", required=True)
    actions.add_parser("process", help="pair ended calls with their recordings and process them")
    retention = actions.add_parser("retention", help="remove recordings past their retention")
    retention.add_argument("--dry-run", action="store_true", help="only list what would go")
    hold = actions.add_parser("hold", help="legal hold: exempt a call's recordings from retention")
    hold.add_argument("call_id")
    hold.add_argument("--release", action="store_true", help="lift the hold instead")
    recordings.set_defaults(handler=_cmd_recordings)
    account = commands.add_parser("account", help="accounts of the API and console users")
    account_actions = account.add_subparsers(dest="action", required=True)
    account_commands.add_parsers(account_actions)
    desk_commands.add_parser(account_actions)
    account.set_defaults(handler=_cmd_account)
    backup = commands.add_parser(
        "backup", help="back up the database (pg_dump) and the stored files to a new directory")
    backup.add_argument("directory", type=Path, help="a new (or empty) directory")
    backup.set_defaults(handler=_cmd_backup)
    restore = commands.add_parser(
        "restore", help="verify a backup's checksums, then restore it into this site")
    restore.add_argument("directory", type=Path, help="a directory written by 'backup'")
    restore.add_argument("--force", action="store_true",
                         help="replace a database that already holds records, and overwrite "
                              "files that differ")
    restore.set_defaults(handler=_cmd_restore)
    demo = commands.add_parser("demo", help="lab + database + server + a few sipp calls")
    demo.add_argument("--keep-running", action="store_true",
                      help="leave the line running after the demo calls (Ctrl-C stops)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


# Root's own tools the line runs live in the sbin directories: runuser (the embedded
# PostgreSQL's owner), chroot (the lab), nginx, kamailio. Debian's `su` without `-` keeps the
# user's PATH, which has none of them, and every command then failed on the first of them.
ROOT_PATH_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def path_for_root(path: str) -> str:
    """``path`` with root's sbin directories it lacks added at its end."""
    present = path.split(os.pathsep) if path else []
    return os.pathsep.join([*present, *(d for d in ROOT_PATH_DIRS if d not in present)])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``siaga112`` console script."""
    args = build_parser().parse_args(argv)
    if os.geteuid() == 0:
        os.environ["PATH"] = path_for_root(os.environ.get("PATH", ""))
    try:
        settings = load_settings(args.config, overrides=_overrides(args.set))
        check_settings(settings)
    except SettingsError as exc:
        print(f"siaga112: pengaturan tidak valid: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        handler: Callable[[Settings, argparse.Namespace], int] = args.handler
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130
    except (BackupError, DatabaseUnavailable, EmbeddedDatabaseError, MigrationError, LabError,
            MenuError, PromptError, AccountError, ScoreConfigError, DeskError, AsteriskSiteError,
            LineStartError, PatroniConfigError, SecretsError, KamailioConfigError) as exc:
        print(f"siaga112: gagal: {exc}", file=sys.stderr)
        return 1
