#!/bin/bash
# The SIP front's health check (docker-compose.cluster.yml): Kamailio answers a SIP OPTIONS
# to itself within 2 s on its UDP listen address (kamailio.cfg replies 200 to an OPTIONS for
# no user at its own address, as it does to the carrier's keepalives). bash's /dev/udp is the
# client: the image has no SIP tool, and kamcmd needs the ctl module the front does not load.
set -eu
host=${SIAGA112_KAMAILIO_HOST:-127.0.0.1}
port=${SIAGA112_KAMAILIO_PORT:-5060}
tag=$RANDOM$RANDOM
exec 3<>"/dev/udp/$host/$port"
# rport: the reply goes back to this socket's own port, whatever the Via says.
crlf=$'\r\n'
request="OPTIONS sip:$host:$port SIP/2.0${crlf}"
request+="Via: SIP/2.0/UDP $host:9;rport;branch=z9hG4bK-health-$tag${crlf}Max-Forwards: 70${crlf}"
request+="From: <sip:health@$host>;tag=$tag${crlf}To: <sip:$host:$port>${crlf}"
request+="Call-ID: health-$tag@$host${crlf}CSeq: 1 OPTIONS${crlf}Content-Length: 0${crlf}${crlf}"
# One write, one datagram: coreutils' printf, whose output is buffered whole (bash's own
# writes line by line, and the front parsed each line as a message of its own). Then head,
# not read: bash reads a byte at a time, and a datagram is gone after the first read.
status=$( { /usr/bin/printf '%s' "$request" >&3 && timeout 2 head -c 11 <&3; } \
            2>/dev/null) || true
if [ "$status" = "SIP/2.0 200" ]; then
    exit 0
fi
echo "kamailio-healthcheck: no 200 to an OPTIONS at $host:$port (${status:-no answer})" >&2
exit 1
