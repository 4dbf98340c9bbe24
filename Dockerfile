# syntax=docker/dockerfile:1
# ExecutionsGateway: build with the Swift 6.3 toolchain, run on a slim Debian with only the runtime
# libraries the binary links (libcurl, libssl/libcrypto, hiredis, zlib) and Swift's runtime, as a
# non-root user.
#
#   docker build -t executions-gateway .
#   docker run --rm -p 8080:8080 -v "$PWD/config:/etc/executions-gateway:ro" \
#       -e GATEWAY_CURSOR_SECRET=... -e KAIZEN_API_KEY=... executions-gateway

FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcurl4-openssl-dev libssl-dev libhiredis-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first so they are cached across source changes.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY openapi ./openapi
RUN swift build -c release --static-swift-stdlib --product executions-gateway \
    && mkdir -p /out \
    && cp "$(swift build -c release --show-bin-path)/executions-gateway" /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcurl4 libssl3 libhiredis0.14 zlib1g ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=build /out/executions-gateway /usr/local/bin/executions-gateway
COPY config/example.yaml /etc/executions-gateway/config.yaml
USER gateway
EXPOSE 8080
ENV GATEWAY_CONFIG=/etc/executions-gateway/config.yaml
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# The config's server.host must be 0.0.0.0 inside a container for the published port to reach it.
ENTRYPOINT ["/usr/local/bin/executions-gateway"]
CMD ["serve"]
