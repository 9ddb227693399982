# Local stand-ins for the public images that compose.yaml and docker/Dockerfile name, for machines that
# cannot pull (ours): each stage is the debootstrapped Debian base plus Debian's own packages.
# Built by tests/deploy/base-images.sh; never shipped.

# SUITE: the Debian release (bookworm, trixie) of every stage; base-images.sh sets it per image.
ARG SUITE=bookworm

FROM local/debian:${SUITE} AS apt
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq

# For docker/Dockerfile's ARG PYTHON_IMAGE: python (3.11 on bookworm, 3.13 on trixie) with venv and
# pip, like python:3.11-slim-bookworm and python:3.13-slim-trixie.
FROM apt AS python
RUN apt-get install -y -qq --no-install-recommends \
        python3 python3-venv python3-pip python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]

# For compose.yaml's nginx service. Debian's nginx with the official image's stop signal (graceful).
FROM apt AS nginx
RUN apt-get install -y -qq --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]

# For compose.yaml's prometheus service: the same entrypoint and user as prom/prometheus, and wget
# for the healthcheck (busybox's wget in the official image).
FROM apt AS prometheus
RUN apt-get install -y -qq --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]

# For compose.yaml's nginx-exporter service (nginx/nginx-prometheus-exporter upstream).
FROM apt AS nginx-exporter
RUN apt-get install -y -qq --no-install-recommends prometheus-nginx-exporter \
    && rm -rf /var/lib/apt/lists/*
USER nobody
ENTRYPOINT ["/usr/bin/prometheus-nginx-exporter"]

# For compose.yaml's alertmanager service: the same user and storage directory as prom/alertmanager,
# and wget for the healthcheck.
FROM apt AS alertmanager
RUN apt-get install -y -qq --no-install-recommends prometheus-alertmanager wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /alertmanager && chown nobody:nogroup /alertmanager
USER nobody
WORKDIR /alertmanager
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
