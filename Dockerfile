# Build: docker build -t rosetta .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p rosetta-server

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app rosetta
WORKDIR /app
COPY --from=build /src/target/release/rosetta-server /usr/local/bin/rosetta-server
COPY config ./config
USER rosetta
ENV APP_ENV=production PORT=8000
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["rosetta-server"]
CMD ["serve"]
