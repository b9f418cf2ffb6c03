#!/bin/sh
# The line container's commands. The settings file is /etc/siaga112/siaga112.toml when mounted;
# the image's SIAGA112_* variables place state and Asterisk's shared directories.
#   serve             run the line (the default); it migrates as the owner before its first
#                     work, whenever the database is up, and a migration that cannot apply
#                     stops it (a 'siaga112 migrate' first would stop it too, and keep it
#                     down, whenever PostgreSQL is down at start: no call fact spooled)
#   asterisk-config   render asterisk-conf/ and install the prompts for the Asterisk container
#   healthcheck       the compose files' health check: the line answers and its own parts
#                     (FastAGI, the spool) are up; not the database's (telephony/metrics/probe.py)
#   anything else     a siaga112 command (account create ..., backup, ...)
set -eu
if [ -z "${SIAGA112_CONFIG:-}" ] && [ -e /etc/siaga112/siaga112.toml ]; then
    export SIAGA112_CONFIG=/etc/siaga112/siaga112.toml
fi
# Docker makes a directory where a mounted file is missing on the host: the line would then
# run on its built-in settings (carrier, ports, addresses), "Up" and wrong. Refused instead,
# in one line (the compose files' long-syntax mounts no longer make one; an earlier run may
# have left it).
if [ -n "${SIAGA112_CONFIG:-}" ] && [ -d "$SIAGA112_CONFIG" ]; then
    echo "siaga112-entrypoint: the settings file $SIAGA112_CONFIG is a directory, not a file:" \
         "docker made it because the settings file was missing on the host (SITE_SETTINGS," \
         "./siaga112.toml by default); remove that directory and copy siaga112.toml.example" \
         "there" >&2
    exit 2
fi
case "${1:-serve}" in
    serve)
        exec siaga112 serve
        ;;
    asterisk-config)
        shift
        exec siaga112 asterisk-config --instance-dir /srv/siaga112/site "$@"
        ;;
    healthcheck)
        exec python3 -m telephony.metrics.probe
        ;;
    *)
        exec siaga112 "$@"
        ;;
esac
