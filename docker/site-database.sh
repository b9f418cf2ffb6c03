# siaga112: the site's database roles, shared by the single node's postgres container
# (postgres-entrypoint.sh) and the cluster's Patroni pair (patroni-entrypoint.sh db-init), so
# both make them the same way. Sourced, not run: defines secret and create_site_database.
#
# The same secret files, made the same way, as the line's telephony/secrets.py: 0600 in a 0700
# directory, appearing in one step (a hard link, which fails if the line made it first: then
# its password is the one used). The line reads them to connect (its DSNs have none):
# database_password is the owner's (siaga112: owns the schema, runs migrations and restores),
# database_line_password the line's own role's (siaga112_line: owns nothing, granted by the
# owner; telephony/db/roles.py).
secrets=/var/lib/siaga112/secrets

# secret NAME: the generated secret's text, made first if missing.
secret() {
    (umask 077 && mkdir -p "$secrets")
    if [ ! -s "$secrets/$1" ]; then
        tmp=$(umask 077 && mktemp "$secrets/.$1.XXXXXX")
        head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$tmp"
        ln "$tmp" "$secrets/$1" 2>/dev/null || true
        rm -f "$tmp"
    fi
    cat "$secrets/$1"
}

# create_site_database PSQL [ARG...]: the owner's and the line's roles and the database, with
# the PSQL command given (connected as a superuser, to the database postgres).
create_site_database() {
    password=$(secret database_password)
    line_password=$(secret database_line_password)
    "$@" -v ON_ERROR_STOP=1 -q <<SQL
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
}
