# syntax=docker/dockerfile:1
# Two images from one file, both running the `nnsvc` command as a non-root user on the /data volume:
#   cpu  the API, `nnsvc migrate` and the CPU worker; torch's CPU build, no CUDA
#   gpu  the GPU worker; torch's CUDA build (the NVIDIA driver comes from the host's container toolkit)
# Settings come from NNSVC_ environment variables at run time; nothing secret is baked in.
#   docker build --target cpu -t nnsvc:cpu .      docker build --target gpu -t nnsvc:gpu .

# The same torch as scripts/setup-venv.sh pins (tests/deploy checks it).
ARG TORCH_VERSION=2.13.0

# Builds nnsvc's wheel, so the runtime images hold the installed package (migration scripts included)
# and no source tree.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY cli cli
COPY service service
COPY app app
COPY worker worker
COPY migrations migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NNSVC_DATA_ROOT=/data
RUN useradd --create-home --uid 1000 nnsvc && mkdir -p /data && chown nnsvc:nnsvc /data
VOLUME ["/data"]
WORKDIR /home/nnsvc
ENTRYPOINT ["nnsvc"]

FROM runtime AS cpu
ARG TORCH_VERSION
# The API itself never imports torch, but the `nnsvc` command does (training, prediction). Its CPU build
# goes in first, so that it satisfies nnsvc's requirement and PyPI's CUDA build (GBs) is never pulled.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels pip install /wheels/*.whl
USER nnsvc
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS gpu
ARG TORCH_VERSION
# PyPI's Linux build of torch is the CUDA one; point TORCH_INDEX_URL at a download.pytorch.org/whl/cuXXX
# index to pick another CUDA version.
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels pip install /wheels/*.whl
USER nnsvc
# Healthy while this container's worker keeps recording itself under DATA_ROOT/workers (service/workers.py).
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import socket, sys; from service.settings import Settings; from service.workers import seen_workers; settings = Settings(); sys.exit(not any(socket.gethostname() in worker['name'] for worker in seen_workers(settings, settings.heartbeat_timeout_s)))"]
CMD ["worker", "--queues", "gpu"]
