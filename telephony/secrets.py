"""A site's generated secrets: one file each in ``Settings.live_secrets_dir``.

A site leaves the AMI secret, the database password and the password Asterisk reads the
operator phones with unset; the first process that needs one generates it here and every
later one (the line, the Asterisk configuration rendered at container start, a restart)
reads the same file. Files are 0600 in a 0700 directory and appear in one step: the secret is
written to a private temporary file and hard-linked to its name, which fails if another
process got there first, and then that process's secret is the one used. A file readable
by others is refused rather than used: it has leaked already.

The lab (``site_kind = "lab"``) generates nothing: it keeps its well-known AMI secret, and
a checkout's tests and demo need no secrets directory. That secret is refused anywhere else
(``Settings.is_lab``: a line configured for another Asterisk is not the lab even when
site_kind was left at its default).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from telephony.settings import LAB_AMI_SECRET, Settings, SettingsError

AMI_SECRET = "ami_secret"  # noqa: S105 - a file name
DATABASE_PASSWORD = "database_password"  # noqa: S105 - a file name
# The line's own role (database_line_user); database_password stays the owner's.
DATABASE_LINE_PASSWORD = "database_line_password"  # noqa: S105 - a file name
ASTERISK_DB_PASSWORD = "asterisk_db_password"  # noqa: S105 - a file name
AGI_SECRET = "agi_secret"  # noqa: S105 - a file name
# The password Asterisk reads the phones with in the lab (whose database is a throwaway).
LAB_ASTERISK_DB_PASSWORD = "siaga112-lab-phones"  # noqa: S105 - public on purpose
SITE_SECRETS = (AMI_SECRET, DATABASE_PASSWORD, DATABASE_LINE_PASSWORD, ASTERISK_DB_PASSWORD,
                AGI_SECRET)


class SecretsError(SettingsError):
    """A secret file could not be read or created, or others can read it."""


def read_secret(path: Path) -> str:
    """The secret in ``path`` (one line); refused when group or others may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretsError(f"cannot read secret {path}: {exc}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise SecretsError(f"secret {path} is readable by others (mode "
                           f"{stat.S_IMODE(mode):o}); chmod 600 it, and change the secret")
    if not text or "\n" in text:
        raise SecretsError(f"secret {path} must hold one non-empty line")
    return text


def read_or_create(directory: Path, name: str) -> str:
    """The secret ``directory/name``, generated (32 random URL-safe characters) if absent."""
    path = directory / name
    with contextlib.suppress(FileNotFoundError):
        return read_secret(path)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use theirs
                os.link(tmp, path)
        finally:
            Path(tmp).unlink()
    except OSError as exc:
        raise SecretsError(f"cannot create secret {path}: {exc}") from exc
    return read_secret(path)


def ensure_site_secrets(settings: Settings) -> dict[str, Path]:
    """Generate every secret a site needs that is not there yet; name -> file."""
    directory = settings.live_secrets_dir
    for name in SITE_SECRETS:
        read_or_create(directory, name)
    return {name: directory / name for name in SITE_SECRETS}


def ami_secret(settings: Settings) -> str:
    """The AMI secret: the setting, else the lab's in the lab, else the generated one. The
    lab's (public) secret is refused outside the lab (:attr:`Settings.is_lab`), whether it
    was set or defaulted: the line neither logs in with it nor renders it into a
    manager.conf."""
    if (refusal := settings.lab_ami_secret_refusal()) is not None:
        raise SecretsError(refusal)
    if settings.ami_secret is not None:
        return settings.ami_secret
    if not settings.is_site:
        return LAB_AMI_SECRET
    return read_or_create(settings.live_secrets_dir, AMI_SECRET)


def agi_secret(settings: Settings) -> str | None:
    """The secret Asterisk puts in its FastAGI URLs and the server checks: the setting, else
    the generated one on a site; ``None`` in the lab (there the peer allowlist alone
    applies). token_urlsafe's alphabet is safe to splice into the dialplan."""
    if settings.agi_secret is not None:
        return settings.agi_secret
    if not settings.is_site:
        return None
    return read_or_create(settings.live_secrets_dir, AGI_SECRET)


def asterisk_db_password(settings: Settings) -> str:
    """The password of the read-only role Asterisk reads the operator phones with."""
    if not settings.is_site:
        return LAB_ASTERISK_DB_PASSWORD
    return read_or_create(settings.live_secrets_dir, ASTERISK_DB_PASSWORD)


def carrier_password(settings: Settings) -> str | None:
    """The password for the carrier's digest challenges, if the carrier wants one."""
    if settings.carrier_password_file is not None:
        try:
            return read_secret(settings.carrier_password_file)
        except FileNotFoundError as exc:
            raise SecretsError(
                f"carrier_password_file {settings.carrier_password_file} does not exist"
            ) from exc
    return settings.carrier_password


def database_dsn(settings: Settings) -> str | None:
    """The line's ``database_dsn`` with its password: on a site, a URL DSN without one gets
    the generated ``database_line_password`` when the owner is a role of its own
    (``database_owner_dsn``), else ``database_password`` (the line is the owner: the same file
    a PostgreSQL container is initialised with), unless libpq's PGPASSWORD gives it."""
    secret = DATABASE_LINE_PASSWORD if settings.database_owner_dsn is not None \
        else DATABASE_PASSWORD
    return _with_password(settings, settings.database_dsn, secret)


def database_owner_dsn(settings: Settings) -> str | None:
    """``database_owner_dsn`` with its password (``database_password`` on a site, as for
    :func:`database_dsn`); ``None`` when unset."""
    return _with_password(settings, settings.database_owner_dsn, DATABASE_PASSWORD)


def _with_password(settings: Settings, dsn: str | None, secret: str) -> str | None:
    if dsn is None or not settings.is_site or "PGPASSWORD" in os.environ:
        return dsn
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql") or parts.password is not None:
        return dsn  # key=value DSNs and DSNs with a password are used as written
    password = read_or_create(settings.live_secrets_dir, secret)
    userinfo, _, host = parts.netloc.rpartition("@")  # userinfo stays URL-encoded
    netloc = f"{userinfo}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
