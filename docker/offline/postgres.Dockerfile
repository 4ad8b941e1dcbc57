# PostgreSQL 15 from Debian's package, for hosts with no registry. The official image's contract:
# PGDATA=/var/lib/postgresql/data (a volume), POSTGRES_USER / POSTGRES_DB / POSTGRES_PASSWORD(_FILE)
# initialise an empty data directory (postgres-entrypoint.sh), password auth over TCP, the
# server runs in front as the postgres user, and pg_isready is on the PATH.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# No cluster from the package's own scripts: the entrypoint creates the one the volume holds.
RUN mkdir -p /etc/postgresql-common \
    && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
# Over TCP, like the Compose healthcheck: during the first initialisation only the socket listens.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
    CMD ["sh", "-c", "pg_isready -h 127.0.0.1 -U \"${POSTGRES_USER:-postgres}\""]
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
