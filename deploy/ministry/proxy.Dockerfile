# The ministry's reverse proxy: nginx from Debian's packages (the version the loopback
# tests run), configured from deploy/nginx/perseverance.conf.template at start.
# Its base is made from Debian's archive with nginx and envsubst already in it
# (deploy/images/make-base.sh proxy): the build installs nothing, offline.
# Build with `make images`, or from the repository root:
#   podman build -f deploy/ministry/proxy.Dockerfile \
#     --ignorefile deploy/ministry/proxy.Dockerfile.dockerignore \
#     -t localhost/perseverance/proxy:0.1.0 .
# Runs as uid 49999 (listens on 8443 and 9443); everything it writes (the rendered site,
# its pid, temporary files) is under /run/nginx (a tmpfs when the root is read-only).

ARG BASE_IMAGE=localhost/perseverance-proxy-base:bookworm-r1
FROM ${BASE_IMAGE}

COPY deploy/ministry/proxy-nginx.conf /etc/nginx/nginx.conf
COPY deploy/nginx/perseverance.conf.template /etc/nginx/templates/perseverance.conf.template
COPY deploy/ministry/proxy-entrypoint.sh /usr/local/bin/proxy-entrypoint
RUN chmod 755 /usr/local/bin/proxy-entrypoint \
    && rm -rf /etc/nginx/sites-enabled/* /etc/nginx/conf.d/* \
    && mkdir -p /run/nginx && chown app:app /run/nginx \
    && command -v envsubst nginx

USER app
EXPOSE 8443 9443
ENTRYPOINT ["/usr/local/bin/proxy-entrypoint"]
