# One image for every process of the federation; docker-compose.yml picks the command.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY registries ./registries
RUN pip install --no-cache-dir .
# The mount points of the `setup` service's volumes exist in the image and belong to the
# gateway user, so Docker initialises each empty named volume writable for it.
RUN useradd --system --home /state gateway \
    && mkdir -p /state/trust /state/central /state/soest-node /state/lippstadt-node \
       /state/iserlohn-node /state/ihk-node /state/lippstadt-registry \
       /state/iserlohn-registry /state/soest-registry /state/ihk /state/portal \
    && chown -R gateway /state
USER gateway
ENTRYPOINT ["gateway"]
