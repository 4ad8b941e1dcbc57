# blackbox-exporter from Debian's package, for hosts with no registry. Same contract as
# prom/blackbox-exporter: the binary is the entrypoint, Compose passes the flags.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus-blackbox-exporter wget \
    && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9115
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9115/-/healthy"]
ENTRYPOINT ["/usr/bin/prometheus-blackbox-exporter"]
