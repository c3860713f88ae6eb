# The demo application of docker/compose.yaml and `make test-docker`:
# demo/backend.py, plain HTTP/1.1 on 127.0.0.1:8080 of its network
# namespace, which the tlsterm sidecar shares. Build from the repository root:
#
#   docker build -f docker/demo-app.Dockerfile -t tlsterm-demo-app .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY demo/ /srv/demo/
USER 10002:10002
# As PID 1, python ignores SIGTERM (no handler); SIGINT ends it at once.
STOPSIGNAL SIGINT
ENTRYPOINT ["python3", "/srv/demo/backend.py", "127.0.0.1", "8080"]
