# The dashboard in a container, with the same pins as requirements.txt.
#   podman build -t xai-dashboard . && podman run -p 8501:8501 xai-dashboard
# (docker works the same). BASE may be any Debian-based image with Python 3.11, e.g. one
# made from Debian's own packages with debootstrap (see the README's "Container" section).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /app

# bubblewrap confines the model worker that runs uploaded models. Docker's default
# seccomp profile refuses the namespaces it needs, so inside a default container the
# worker falls back to Landlock (detected at run time; the page says which is active).
# A base image without package sources builds without it (Landlock or consent then).
RUN (apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*) \
    || echo "bubblewrap not installed: uploaded models get Landlock, else need explicit trust"
# a virtual environment: Debian's own python3 refuses system-wide pip installs (PEP 668)
RUN python3 -m venv /opt/venv
COPY requirements.txt .
RUN python -m pip install --upgrade pip && python -m pip install -r requirements.txt

COPY . .
# the project itself, so `python -m xai_core ...` runs from any folder in the container
RUN python -m pip install --no-deps -e . && useradd --create-home app && chown -R app /app
USER app

EXPOSE 8501
# Python, as PID 1, ignores SIGTERM but turns SIGINT into a clean Streamlit shutdown
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"
CMD ["python", "-m", "streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
