# The serving image: worker (8080) and coordinator (8081) for the production models.
# Point it at the shared tracking server and warehouse:
#   docker build -t nba-points-serving .
#   docker run -p 8080:8080 -p 8081:8081 -e MLFLOW_TRACKING_URI=http://mlflow:5000 \
#     -e WAREHOUSE_URL=bigquery://PROJECT/DATASET -e WORKER_TOKEN=... nba-points-serving
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml constraints.txt ./
COPY contracts.py settings.py cli.py ./
COPY warehouse/ warehouse/
COPY features/ features/
COPY training/ training/
COPY registry/ registry/
COPY serving/ serving/
COPY sources/ sources/
COPY monitoring/ monitoring/
COPY live/ live/
COPY experiments/ experiments/
RUN pip install -c constraints.txt . && useradd --create-home --uid 10001 app
USER app

EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD python -c \
  "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"
CMD ["python", "cli.py", "serve", "--host", "0.0.0.0", "--port", "8080"]
