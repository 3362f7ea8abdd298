# One image for the api, controller, worker and trainer services of docker-compose.yml.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake bubblewrap nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY evaluators ./evaluators
COPY migrations ./migrations
COPY problems ./problems
# Editable, so the web UI's node_modules (installed next) are served from the package folder.
RUN pip install --no-cache-dir -e ".[rl,gym]" \
    && npm ci --prefix service/web --no-audit --no-fund
ENV EVOFORGE_HOME=/data
EXPOSE 8000
CMD ["evoforge", "serve", "--host", "0.0.0.0", "--port", "8000"]
