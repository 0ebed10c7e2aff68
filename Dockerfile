# casebridge: FHIR R4 case management and referral exchange.
# Build: docker build -t casebridge .
# Run:   docker run -p 8000:8000 -v casebridge-data:/data \
#          -e CASEBRIDGE_BASE_URL=https://fhir.example.org/fhir casebridge
# CASEBRIDGE_BASE_URL must be the public address clients use (Location headers, links).
# For PostgreSQL set CASEBRIDGE_DATABASE_URL=postgresql://user@host/db and scale with
# more containers (or --workers); each process runs one handler thread.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY schemas ./schemas
COPY mappings ./mappings
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CASEBRIDGE_DATA_DIR=/data \
    CASEBRIDGE_ENVIRONMENT=production
RUN groupadd --system --gid 10001 casebridge \
 && useradd --system --uid 10001 --gid casebridge --home-dir /nonexistent --shell /usr/sbin/nologin casebridge \
 && mkdir -p /data && chown casebridge:casebridge /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER casebridge
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"
# --migrate applies pending migrations at start; drop it to have the container refuse
# an unmigrated database and run `casebridge db upgrade` as a separate step instead.
CMD ["casebridge", "serve", "--host", "0.0.0.0", "--port", "8000", "--migrate"]
