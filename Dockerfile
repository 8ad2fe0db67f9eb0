# Image for compose.yaml's api, consumer and setup services.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY consumer consumer
COPY shared shared
COPY scripts scripts
COPY sql sql
RUN pip install --no-cache-dir .
EXPOSE 8000
