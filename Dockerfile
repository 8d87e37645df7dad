# appliance: a self-hosted auth appliance. Multi-stage: build with the Rust toolchain,
# run on a slim Debian as a non-root user with the database on the /data volume.
#
#   docker build -t appliance .
#   docker run -d --name appliance -p 8080:8080 -v appliance-data:/data appliance
#   docker exec -it appliance appliance admin user add alice
#
# tests/docker.sh builds and runs this file in CI (with podman; RUST_IMAGE there names
# a local stand-in carrying the same toolchain).

ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them. Cargo.toml patches tiny_http
# with the copy in vendor/, so it belongs to this layer too.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY schema.sql schema.postgres.sql ./
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/appliance

FROM debian:bookworm-slim
# /config is where the client keeps its credentials (APPLIANCE_CONFIG_DIR): it exists
# and belongs to the appliance user, so a volume mounted there starts out writable by
# it (the agent recipe in the README).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 appliance \
    && useradd --system --uid 10001 --gid appliance --home-dir /data --shell /usr/sbin/nologin appliance \
    && mkdir -p /data /config \
    && chown appliance:appliance /data /config \
    && chmod 0700 /data /config
COPY --from=build /src/target/release/appliance /usr/local/bin/appliance
ENV APPLIANCE_LISTEN=0.0.0.0:8080 \
    APPLIANCE_DB=/data/appliance.db \
    APPLIANCE_CONFIG_DIR=/config
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["appliance", "healthcheck"]
ENTRYPOINT ["appliance"]
CMD ["serve"]
