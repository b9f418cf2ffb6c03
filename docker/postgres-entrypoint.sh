#!/bin/sh
# First start: initialise the cluster in the pgdata volume with the siaga112 role that owns the
# database (its password the site's generated database_password, telephony/secrets.py), the
# line's siaga112_line role (database_line_password) and the database. Every start: run
# postgres on loopback (host networking) on PGPORT.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
data=/var/lib/postgresql/data
port="${PGPORT:-5432}"
mkdir -p "$data"
chown postgres:postgres "$data"
chmod 700 "$data"
# The site's roles and database (site-database.sh, shared with the cluster's Patroni pair);
# the password files are made at every start, as the line may read them first.
. /usr/local/lib/siaga112/site-database.sh
secret database_password >/dev/null
secret database_line_password >/dev/null
if [ ! -s "$data/PG_VERSION" ]; then
    as_postgres initdb -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    as_postgres pg_ctl -D "$data" -w -l /tmp/init.log start \
        -o "-c listen_addresses= -p $port -c unix_socket_directories=/tmp" >/dev/null
    create_site_database as_postgres psql -h /tmp -p "$port" -U postgres -d postgres
    as_postgres pg_ctl -D "$data" -m fast -w stop >/dev/null
fi
# exec, not su: postgres itself receives docker's SIGTERM (a smart shutdown).
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$data" -c listen_addresses=127.0.0.1 -p "$port" -c unix_socket_directories=/tmp
