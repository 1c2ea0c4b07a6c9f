# One image for every process of the federation; docker-compose.yml picks the command.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY registries ./registries
RUN pip install --no-cache-dir .
RUN useradd --system --home /state gateway && mkdir -p /state && chown gateway /state
USER gateway
ENTRYPOINT ["gateway"]
