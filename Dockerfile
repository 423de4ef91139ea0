# imgorigin: a slim, non-root image serving the origin and the admin API on port 8000.
#   docker build -t imgorigin .
#   docker run --rm -v imgorigin-data:/data imgorigin migrate
#   docker run -p 8000:8000 -v imgorigin-data:/data -e IMGORIGIN_ENV=production -e JWT_SECRET=… -e URL_SIGNING_KEYS=k1:… imgorigin
# (one named volume for both: the SQLite database, local storage and secrets live in /data;
# with PostgreSQL and S3, pass DATABASE_URL and the storage settings to both instead)

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/imgorigin
COPY requirements.lock ./
# Pinned runtime dependencies first (a cached layer); libvips comes from the pyvips-binary wheel.
# Every file is checked against its hash in the lock; --no-deps: the lock is the whole set
# (tests/project/test_lock.py installs it the same way and runs `pip check`).
RUN /opt/imgorigin/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY origin ./origin
COPY admin_api ./admin_api
COPY imgorigin ./imgorigin
RUN /opt/imgorigin/bin/pip install --no-deps . \
    && /opt/imgorigin/bin/pip check \
    && /opt/imgorigin/bin/python -c "import pyvips, imgorigin.app; print(pyvips.version(0), pyvips.version(1))"

FROM python:3.11-slim-bookworm
# Fonts for text overlays (l_text:).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core=2.37-6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 imgorigin && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin imgorigin \
    && mkdir -p /data \
    && chown imgorigin:imgorigin /data
COPY --from=build /opt/imgorigin /opt/imgorigin
ENV PATH=/opt/imgorigin/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    WORKERS=2 \
    DATABASE_URL=sqlite:////data/imgorigin.db \
    STORAGE_PATH=/data/storage \
    SECRETS_FILE=/data/secrets.json
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
# `imgorigin serve` takes its number of workers from WORKERS; run `imgorigin migrate` once
# per database before the first start (docker run … imgorigin migrate, on the same volume
# or DATABASE_URL: serve refuses a database that lacks a migration).
ENTRYPOINT ["imgorigin"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
