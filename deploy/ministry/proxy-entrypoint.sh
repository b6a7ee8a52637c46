#!/bin/sh
# Render the proxy's site from the template with exactly these variables (the list in
# server/deployment/proxy.py TEMPLATE_VARIABLES; nginx's own $variables are left alone), check it,
# and run nginx in the foreground.
set -eu
# The operator CA's revocation list: beside its certificate unless given (as the launcher).
OPERATOR_CRL="${OPERATOR_CRL:-${OPERATOR_CA_CERTIFICATE:+${OPERATOR_CA_CERTIFICATE%.crt}.crl}}"
export OPERATOR_CRL
VARIABLES='${PROXY_CENTRES_LISTEN} ${PROXY_OPERATOR_LISTEN} ${SUPERLINK_ADDRESS} ${SUPERLINK_TLS_NAME} ${TLS_CERTIFICATE} ${TLS_CERTIFICATE_KEY} ${TLS_CA_CERTIFICATE} ${OPERATOR_CA_CERTIFICATE} ${CONSOLE_ADDRESS} ${OPERATOR_CRL}'
for name in PROXY_CENTRES_LISTEN PROXY_OPERATOR_LISTEN SUPERLINK_ADDRESS SUPERLINK_TLS_NAME \
            TLS_CERTIFICATE TLS_CERTIFICATE_KEY TLS_CA_CERTIFICATE OPERATOR_CA_CERTIFICATE \
            CONSOLE_ADDRESS OPERATOR_CRL; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "proxy: the environment variable $name is not set." >&2
    exit 2
  fi
done
if [ ! -r "$OPERATOR_CRL" ]; then
  echo "proxy: no operator revocation list at $OPERATOR_CRL: mount the PKI's operator-ca.crl (perseverance-server pki init writes it, pki revoke-operator updates it)." >&2
  exit 2
fi
mkdir -p /run/nginx
envsubst "$VARIABLES" < /etc/nginx/templates/perseverance.conf.template \
  > /run/nginx/perseverance.conf
# -e: nginx's log before the configuration is read (its default file is root's).
nginx -e stderr -t -q
exec nginx -e stderr
