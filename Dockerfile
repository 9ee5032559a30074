# syntax=docker/dockerfile:1
# Switchyard hub: a release build, then a slim runtime image that runs as a
# non-root user, keeps its data (SQLite database, signing secret) in a
# volume, and reports its health from /ready.
#
#   docker build --build-arg SWITCHYARD_COMMIT=$(git rev-parse --short=12 HEAD) -t switchyard .
#   docker run -p 8000:8000 -v switchyard-data:/var/lib/switchyard switchyard

FROM rust:1-bookworm AS build
ARG SWITCHYARD_COMMIT=unknown
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchyard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/switchyard switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
USER switchyard
WORKDIR /var/lib/switchyard
ENV SWITCHYARD_DATA_DIR=/var/lib/switchyard \
    SWITCHYARD_LISTEN=0.0.0.0:8000
VOLUME ["/var/lib/switchyard"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/ready || exit 1
ENTRYPOINT ["switchyard"]
CMD ["serve"]
