# One image for every agora service in docker-compose.yml: experiments (`agora run`, `agora sweep`)
# and the OpenAI-compatible mock model server (`agora mock-server`). Keys are never baked in: they
# come from the environment at run time, by the name in `inference.api_key_env`.
#   docker build -t agora:latest .            (or: make image)
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a source edit reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The same install as the README's (`pip install -e .`), without the dev extras.
COPY . .
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 1000 --user-group agora \
    && mkdir -p runs/out runs/cache \
    && chown agora:agora runs runs/out runs/cache

# Numeric, so an orchestrator can verify it is not root without reading /etc/passwd.
USER 1000:1000

# Outputs and the response cache outlive the container; the config's defaults point here.
VOLUME ["/app/runs/out", "/app/runs/cache"]

# For the mock server (`agora mock-server --host 0.0.0.0 --port 8000`); run containers disable it.
# AGORA_HEALTH_URL points it elsewhere, e.g. a mock server on another port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('AGORA_HEALTH_URL', 'http://127.0.0.1:8000/health'), timeout=3)"]

EXPOSE 8000
ENTRYPOINT ["agora"]
CMD ["run", "runs/schelling_city.toml"]
