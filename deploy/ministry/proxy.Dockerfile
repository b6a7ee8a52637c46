# The ministry's reverse proxy: nginx from Debian's packages (the version the loopback
# tests run), configured from deploy/nginx/perseverance.conf.template at start.
# Build from the repository root:
#   docker build -f deploy/ministry/proxy.Dockerfile -t perseverance/proxy:0.1.0 .
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       nginx gettext-base \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*

COPY deploy/ministry/proxy-nginx.conf /etc/nginx/nginx.conf
COPY deploy/nginx/perseverance.conf.template /etc/nginx/templates/perseverance.conf.template
COPY deploy/ministry/proxy-entrypoint.sh /usr/local/bin/proxy-entrypoint
RUN chmod 755 /usr/local/bin/proxy-entrypoint

EXPOSE 8443 9443
ENTRYPOINT ["/usr/local/bin/proxy-entrypoint"]
