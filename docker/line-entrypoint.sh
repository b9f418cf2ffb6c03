#!/bin/sh
# The line container's commands. The settings file is /etc/siaga112/siaga112.toml when mounted;
# the image's SIAGA112_* variables place state and Asterisk's shared directories.
#   serve             apply migrations, then run the line (the default)
#   asterisk-config   render asterisk-conf/ and install the prompts for the Asterisk container
#   anything else     a siaga112 command (account create ..., backup, ...)
set -eu
if [ -z "${SIAGA112_CONFIG:-}" ] && [ -f /etc/siaga112/siaga112.toml ]; then
    export SIAGA112_CONFIG=/etc/siaga112/siaga112.toml
fi
case "${1:-serve}" in
    serve)
        # Migrations before the line takes calls: an upgraded image meets an old schema here.
        siaga112 migrate
        exec siaga112 serve
        ;;
    asterisk-config)
        shift
        exec siaga112 asterisk-config --instance-dir /srv/siaga112/site "$@"
        ;;
    *)
        exec siaga112 "$@"
        ;;
esac
