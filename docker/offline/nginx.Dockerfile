# nginx from Debian's package, for hosts with no registry. Same contract as the pinned default
# (nginxinc/nginx-unprivileged): non-root, listens on 8080/8443; Compose mounts nginx/ and starts it with -c.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light wget \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && chown -R www-data:www-data /var/lib/nginx /var/log/nginx
USER www-data
EXPOSE 8080 8443
# Healthy with nginx/nginx.conf mounted (it serves /healthz on 8080).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
