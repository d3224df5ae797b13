# cost-api: the read-only analytics API, as a container.
#   docker build -t cost-api .
#   docker run -p 8000:8000 -e COST_API_DATABASE_URL=postgresql://cost_api_reader@db/gateway \
#              -e COST_API_KEYS=change-me cost-api
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md pricing.yaml ./
COPY sql ./sql
COPY cost_api ./cost_api
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 cost-api
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER cost-api
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Binding 0.0.0.0 needs API keys (COST_API_KEYS or api_keys in a mounted config file).
ENTRYPOINT ["cost-api", "serve", "--host", "0.0.0.0", "--port", "8000"]
