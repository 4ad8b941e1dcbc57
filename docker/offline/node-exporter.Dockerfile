# node-exporter from Debian's package, for hosts with no registry. Same contract as
# prom/node-exporter: the binary is the entrypoint, Compose passes the flags (the host's /proc,
# /sys and / mounted read-only under /host).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus-node-exporter wget \
    && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9100/metrics"]
ENTRYPOINT ["/usr/bin/prometheus-node-exporter"]
