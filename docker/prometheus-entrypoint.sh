#!/bin/sh
# Renders the mounted docker/prometheus/ files (only ${SITE_*} variables, e.g. the line's
# port) into /etc/prometheus, checks them with promtool and runs Prometheus on loopback.
set -eu
mkdir -p /etc/prometheus
for file in /etc/siaga112/prometheus/*; do
    envsubst "$(env | sed -n 's/^\(SITE_[A-Z_]*\)=.*/${\1}/p' | tr '\n' ' ')" \
        < "$file" > "/etc/prometheus/$(basename "$file")"
done
promtool check config /etc/prometheus/prometheus.yml
exec prometheus --config.file=/etc/prometheus/prometheus.yml \
    --storage.tsdb.path=/var/lib/prometheus \
    --web.listen-address="127.0.0.1:${SITE_PROMETHEUS_PORT}"
