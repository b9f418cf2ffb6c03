#!/bin/sh
# First start: generate the database password (secrets volume), initialise the cluster in the
# pgdata volume with the siaga112 role and database. Every start: run postgres on loopback
# (host networking) on PGPORT.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
data=/var/lib/postgresql/data
secrets=/var/lib/siaga112/secrets
port="${PGPORT:-5432}"
mkdir -p "$data" "$secrets"
chown postgres:postgres "$data"
chmod 700 "$data"
if [ ! -s "$secrets/db_password" ]; then
    umask 077
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secrets/db_password.tmp"
    mv "$secrets/db_password.tmp" "$secrets/db_password"
fi
password=$(cat "$secrets/db_password")
# The line reads this libpq password file (PGPASSFILE); the port is whatever it connects to.
umask 077
printf '*:*:siaga112:siaga112:%s\n' "$password" > "$secrets/pgpass.tmp"
mv "$secrets/pgpass.tmp" "$secrets/pgpass"
if [ ! -s "$data/PG_VERSION" ]; then
    as_postgres initdb -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    as_postgres pg_ctl -D "$data" -w -l /tmp/init.log start \
        -o "-c listen_addresses= -p $port -c unix_socket_directories=/tmp" >/dev/null
    as_postgres psql -h /tmp -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<SQL
CREATE ROLE siaga112 LOGIN PASSWORD '$password';
CREATE DATABASE siaga112 OWNER siaga112;
SQL
    as_postgres pg_ctl -D "$data" -m fast -w stop >/dev/null
fi
# exec, not su: postgres itself receives docker's SIGTERM (a smart shutdown).
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$data" -c listen_addresses=127.0.0.1 -p "$port" -c unix_socket_directories=/tmp
