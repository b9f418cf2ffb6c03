#!/bin/sh
# Lays out the instance directory asterisk-conf/asterisk.conf names (/srv/siaga112/site) and
# runs Asterisk in the foreground. etc/ (rendered configuration), lib/ (astdb), spool/
# (recordings), log/ (the queue_log the line reads) and data/sounds/siaga112/ (prompts) are
# volumes; the rest is made here.
set -eu
site=/srv/siaga112/site
conf="$site/etc/asterisk.conf"
if [ ! -f "$conf" ]; then
    echo "asterisk: $conf is missing: run the asterisk-config service first" >&2
    exit 1
fi
mkdir -p "$site/run" "$site/log" "$site/cache" "$site/lib" "$site/spool/monitor" \
         "$site/data/sounds/siaga112"
# data/ mirrors /usr/share/asterisk, except sounds/, which holds the line's prompts too.
for entry in /usr/share/asterisk/*; do
    name=$(basename "$entry")
    [ "$name" = sounds ] || ln -sfn "$entry" "$site/data/$name"
done
for entry in /usr/share/asterisk/sounds/*; do
    ln -sfn "$entry" "$site/data/sounds/$(basename "$entry")"
done
# A stale pid file or control socket from a killed container would confuse asterisk -r.
rm -f "$site/run/asterisk.pid" "$site/run/asterisk.ctl"
exec asterisk -f -C "$conf"
