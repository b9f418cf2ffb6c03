#!/bin/sh
# First start: initialise the cluster in the pgdata volume with the siaga112 role that owns the
# database (its password the site's generated database_password, telephony/secrets.py), the
# line's siaga112_line role (database_line_password) and the database. Every start: run
# postgres on loopback (host networking) on PGPORT.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
data=/var/lib/postgresql/data
secrets=/var/lib/siaga112/secrets
port="${PGPORT:-5432}"
mkdir -p "$data"
chown postgres:postgres "$data"
chmod 700 "$data"
# The same secret files, made the same way, as the line's telephony/secrets.py: 0600 in a 0700
# directory, appearing in one step (a hard link, which fails if the line made it first: then
# its password is the one used). The line reads them to connect (its DSNs have none):
# database_password is the owner's (siaga112: owns the schema, runs migrations and restores),
# database_line_password the line's own role's (siaga112_line: owns nothing, granted by the
# owner; telephony/db/roles.py).
(umask 077 && mkdir -p "$secrets")
secret() {
    if [ ! -s "$secrets/$1" ]; then
        tmp=$(umask 077 && mktemp "$secrets/.$1.XXXXXX")
        head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$tmp"
        ln "$tmp" "$secrets/$1" 2>/dev/null || true
        rm -f "$tmp"
    fi
    cat "$secrets/$1"
}
password=$(secret database_password)
line_password=$(secret database_line_password)
if [ ! -s "$data/PG_VERSION" ]; then
    as_postgres initdb -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    as_postgres pg_ctl -D "$data" -w -l /tmp/init.log start \
        -o "-c listen_addresses= -p $port -c unix_socket_directories=/tmp" >/dev/null
    as_postgres psql -h /tmp -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<SQL
-- CREATEROLE: the owner creates (and on upgrades updates) the line's role and the
-- read-only role Asterisk reads the phones with.
CREATE ROLE siaga112 LOGIN CREATEROLE PASSWORD '$password';
-- Owns nothing; its grants are the owner's, after every migration run. Created by the owner
-- so that it may keep updating it (PostgreSQL 16 lets a CREATEROLE role alter only the roles
-- it created).
SET ROLE siaga112;
CREATE ROLE siaga112_line LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD '$line_password';
RESET ROLE;
CREATE DATABASE siaga112 OWNER siaga112;
SQL
    as_postgres pg_ctl -D "$data" -m fast -w stop >/dev/null
fi
# exec, not su: postgres itself receives docker's SIGTERM (a smart shutdown).
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$data" -c listen_addresses=127.0.0.1 -p "$port" -c unix_socket_directories=/tmp
