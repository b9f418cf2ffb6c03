#!/bin/sh
# The cluster's database containers (docker-compose.cluster.yml), one image:
#   patroni NAME   a PostgreSQL node under Patroni, run as postgres, with the config the
#                  patroni-config service rendered (`siaga112 patroni-config`) to
#                  /etc/siaga112/patroni/NAME.yml; its volume at /var/lib/siaga112/patroni holds
#                  the data directory (data/), its password file and its socket
#   db-init        once a primary runs: the site's roles and database, as the single node's
#                  postgres container makes them (site-database.sh), when missing. The nodes
#                  are CLUSTER_DB_NODES ("host:port,host:port"); it connects as Patroni's
#                  superuser, whose password the patroni-config service generated
#   anything else  run as given (etcd)
set -eu
. /usr/local/lib/siaga112/site-database.sh

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
        PGPASSWORD=$(cat "$secrets/patroni_superuser_password")
        export PGPASSWORD
        primary="postgresql://postgres@$nodes/postgres?target_session_attrs=read-write&connect_timeout=3"
        tries=0
        until psql "$primary" -Atqc "SELECT 1" >/dev/null 2>&1; do
            tries=$((tries + 1))
            if [ "$tries" -ge 120 ]; then
                echo "db-init: no primary among $nodes after 120 tries" >&2
                exit 1
            fi
            sleep 1
        done
        if [ "$(psql "$primary" -Atqc \
                "SELECT count(*) FROM pg_database WHERE datname = 'siaga112'")" = 0 ]; then
            create_site_database psql "$primary"
            echo "db-init: roles siaga112, siaga112_line and database siaga112 created"
        fi
        # A replica that has not replayed the CREATE DATABASE yet answers "database does not
        # exist", which the line's driver takes as final rather than trying the next node.
        for node in $(echo "$nodes" | tr ',' ' '); do
            tries=0
            until psql "postgresql://postgres@$node/siaga112?connect_timeout=3" -Atqc \
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
