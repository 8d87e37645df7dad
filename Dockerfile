# appliance: a self-hosted auth appliance. Multi-stage: build with the Rust toolchain,
# run on a slim Debian as a non-root user with the database on the /data volume.
#
#   docker build -t appliance .
#   docker run -d --name appliance -p 8080:8080 -v appliance-data:/data appliance
#   docker exec -it appliance appliance admin user add alice

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY schema.sql ./
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/appliance

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 appliance \
    && useradd --system --uid 10001 --gid appliance --home-dir /data --shell /usr/sbin/nologin appliance \
    && mkdir -p /data && chown appliance:appliance /data && chmod 0700 /data
COPY --from=build /src/target/release/appliance /usr/local/bin/appliance
ENV APPLIANCE_LISTEN=0.0.0.0:8080 \
    APPLIANCE_DB=/data/appliance.db
USER appliance:appliance
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["appliance", "healthcheck"]
ENTRYPOINT ["appliance"]
CMD ["serve"]
