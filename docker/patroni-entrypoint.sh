#!/bin/sh
# The cluster's database containers (docker-compose.cluster.yml), one image:
#   patroni NAME   a PostgreSQL node under Patroni, run as postgres, with the config the
#                  patroni-config service rendered (`siaga112 patroni-config`) to
#                  /etc/siaga112/patroni/NAME.yml; its volume at /var/lib/siaga112/patroni holds
#                  the data directory (data/), its password file and its socket
#   db-init        once a primary runs: the line's database, when missing. Its owner is
#                  Patroni's superuser siaga112 (README, "A replicated database"), which the
#                  line's database_owner_dsn names without a password: the line reads it from
#                  the secret database_password, made here the same file as the superuser's
#                  (patroni_superuser_password). The line's own role is created by the owner
#                  at the line's first start. The nodes are CLUSTER_DB_NODES, host:port,...
#   anything else  run as given (etcd)
set -eu
secrets=/var/lib/siaga112/secrets

case "${1:-}" in
    patroni)
        name=$2
        home=/var/lib/siaga112/patroni
        mkdir -p "$home"
        chown postgres:postgres "$home"
        chmod 700 "$home"
        # It holds the cluster's passwords: the postgres user's own copy, 0600.
        install -o postgres -g postgres -m 600 "/etc/siaga112/patroni/$name.yml" \
            "$home/patroni.yml"
        # exec: Patroni itself receives docker's SIGTERM, stops its PostgreSQL and gives up
        # the leader key, so the replica is promoted at once rather than after patroni_ttl.
        exec setpriv --reuid=postgres --regid=postgres --init-groups \
            patroni "$home/patroni.yml"
        ;;
    db-init)
        nodes=${CLUSTER_DB_NODES:?CLUSTER_DB_NODES: the nodes, host:port,host:port}
        superuser=$secrets/patroni_superuser_password
        # One step, never replaced (as telephony/secrets.py makes its files): a hard link.
        ln "$superuser" "$secrets/database_password" 2>/dev/null || true
        if ! cmp -s "$superuser" "$secrets/database_password"; then
            echo "db-init: $secrets/database_password is not Patroni's superuser password" >&2
            exit 1
        fi
        PGPASSWORD=$(cat "$superuser")
        export PGPASSWORD
        primary="postgresql://siaga112@$nodes/postgres?target_session_attrs=read-write&connect_timeout=3"
        tries=0
        until psql "$primary" -Atqc "SELECT 1" >/dev/null 2>&1; do
            tries=$((tries + 1))
            if [ "$tries" -ge 120 ]; then
                psql "$primary" -Atqc "SELECT 1" >&2 || true
                echo "db-init: no primary among $nodes after 120 tries" >&2
                exit 1
            fi
            sleep 1
        done
        if [ "$(psql "$primary" -Atqc \
                "SELECT count(*) FROM pg_database WHERE datname = 'siaga112'")" = 0 ]; then
            psql "$primary" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE siaga112 OWNER siaga112"
            echo "db-init: database siaga112 created"
        fi
        # A replica that has not replayed the CREATE DATABASE yet answers "database does not
        # exist", which the line's driver takes as final rather than trying the next node.
        for node in $(echo "$nodes" | tr ',' ' '); do
            tries=0
            until psql "postgresql://siaga112@$node/siaga112?connect_timeout=3" -Atqc \
                    "SELECT 1" >/dev/null 2>&1; do
                tries=$((tries + 1))
                if [ "$tries" -ge 60 ]; then
                    echo "db-init: database siaga112 not on $node" >&2
                    exit 1
                fi
                sleep 1
            done
        done
        ;;
    *)
        exec "$@"
        ;;
esac
