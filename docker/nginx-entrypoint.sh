#!/bin/sh
# Renders the mounted site configuration (only ${SITE_*} variables are replaced, so nginx's own
# $variables stay) and, when the site has not put a certificate in the tls volume, makes a
# self-signed one so the console is HTTPS from the first start.
set -eu
tls=/etc/siaga112/tls
mkdir -p "$tls"
if [ ! -s "$tls/cert.pem" ] || [ ! -s "$tls/key.pem" ]; then
    echo "nginx: no certificate in $tls: generating a self-signed one for ${SITE_HOSTNAME}" >&2
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=${SITE_HOSTNAME}" \
        -addext "subjectAltName=DNS:${SITE_HOSTNAME},IP:127.0.0.1" \
        -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null
fi
for conf in /etc/siaga112/nginx/*.conf; do
    envsubst "$(env | sed -n 's/^\(SITE_[A-Z_]*\)=.*/${\1}/p' | tr '\n' ' ')" \
        < "$conf" > "/etc/nginx/conf.d/$(basename "$conf")"
done
nginx -t
exec nginx -g 'daemon off;'
