# One image for every Conveyor processor: `docker run IMAGE run embed`, `... run index classify`, ...
#
# Build (make image): the wheel and every dependency as wheels go into build/wheelhouse first
# (pip's cache; nothing is compiled), then
#   podman build --build-arg BASE=<a Python 3.11 image> -t conveyor:0.1.0 .
# BASE defaults to python:3.11-slim-bookworm; where no image registry is reachable, `make image`
# builds a Debian bookworm base (python3 3.11) with debootstrap and imports it.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
COPY build/wheelhouse /wheelhouse
RUN python3 -m venv /opt/conveyor \
 && /opt/conveyor/bin/pip install --no-cache-dir --no-index --find-links /wheelhouse conveyor \
 && /opt/conveyor/bin/pip uninstall -y opencv-python \
 && /opt/conveyor/bin/pip install --no-cache-dir --no-index --no-deps --find-links /wheelhouse opencv-python-headless \
 && /opt/conveyor/bin/pip uninstall -y pip \
 && find /opt/conveyor -name __pycache__ -prune -exec rm -rf {} + \
 && rm -rf /opt/conveyor/lib/python3.11/site-packages/conveyor/tools
# opencv-python (a rapidocr dependency) links X11 libraries a server image lacks: its headless
# build of the same version replaces it (same cv2, no GUI).
# The runtime only: the offline tools (local stack, demo, bench, evaluation, training) are left
# out, and with them their `conveyor stack|demo|eval` subcommands.
# Fail the build, not the first pod, when a model is missing or does not match its pinned sha256.
RUN /opt/conveyor/bin/python -c "from conveyor.processors.embed.model import MiniLMEmbedder; MiniLMEmbedder(); \
from conveyor.processors.classify import ClassifyProcessor; ClassifyProcessor(); \
import rapidocr_onnxruntime; print('models ok')"

FROM ${BASE}
RUN groupadd --gid 10001 conveyor && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/conveyor conveyor \
 && mkdir -p /var/lib/conveyor && chown 10001:10001 /var/lib/conveyor
COPY --from=build /opt/conveyor /opt/conveyor
ENV PATH=/opt/conveyor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    CONVEYOR_HOME=/var/lib/conveyor \
    CONVEYOR_METRICS_ADDR=0.0.0.0 \
    CONVEYOR_METRICS_PORT=9464 \
    CONVEYOR_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/conveyor
EXPOSE 9464
ENTRYPOINT ["conveyor"]
CMD ["--help"]
