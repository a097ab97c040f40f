# ModelLens dashboard image. The install steps are scripts/install.sh, the same ones `make run` runs
# (and CI exercises on every `make test`), so the image installs exactly what was tested.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MODELLENS_HOME=/data \
    MODELLENS_STORE=/data/store

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin modellens \
    && mkdir -p /data && chown modellens:modellens /data

WORKDIR /app
COPY requirements.txt constraints.txt ./
COPY scripts/install.sh scripts/install.sh
RUN sh scripts/install.sh deps

COPY --chown=modellens:modellens . .
RUN sh scripts/install.sh project

USER 10001
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD [".venv/bin/python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD [".venv/bin/modellens", "serve", "--address", "0.0.0.0", "--port", "8501"]
