# The riskgraph API on the Neo4j store (see docker-compose.yml for the whole service).

# The analyst workbench is bundled from npm packages at build time.
FROM node:20-slim AS ui
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend ./
RUN npm run build

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Pango renders the PDF reports; the CJK font their Chinese text.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Only the package sources: no virtualenv, test data or Neo4j launcher jars in the image.
COPY pyproject.toml README.md ./
COPY kg ./kg
COPY ingest ./ingest
COPY reasoning ./reasoning
COPY risk ./risk
COPY api ./api
COPY --from=ui /src/api/static ./api/static
RUN pip install '.[neo4j]' \
    && useradd --system --uid 10001 --home-dir /app riskgraph \
    && mkdir -p /var/lib/riskgraph && chown riskgraph /var/lib/riskgraph

USER riskgraph
ENV RISKGRAPH_STORE=neo4j \
    RISKGRAPH_MODE=production \
    RISKGRAPH_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["riskgraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
