# syntax=docker/dockerfile:1
# CPU image of nnsvc with the command line. The API image and the CUDA worker image build on this
# layout when the service lands.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# Point TORCH_INDEX_URL at a CPU-only torch index to keep the image small; PyPI's default is a CUDA build.
ARG TORCH_INDEX_URL=""
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
WORKDIR /opt/nnsvc
COPY pyproject.toml README.md ./
COPY core core
COPY cli cli
COPY app app
COPY worker worker
RUN pip install .
RUN useradd --create-home --uid 1000 nnsvc && mkdir -p /data && chown nnsvc /data
USER nnsvc
VOLUME ["/data"]
ENTRYPOINT ["nnsvc"]
CMD ["--help"]
