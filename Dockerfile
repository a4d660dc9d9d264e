# One image for every OTPflow process: `otpflow api|worker|beat|simulator`, and Flower with
# `--entrypoint celery ... flower` (docker-compose.yml runs them all). Settings come only from
# OTPFLOW_* environment variables; the image holds no .env and no secret.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# an unprivileged user of our own (`nobody` has no home directory)
RUN useradd --create-home --uid 10001 otpflow

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY flow flow
COPY producers producers
COPY providers providers
COPY api api
COPY worker worker
COPY cli cli
COPY simulator simulator
# [simulator]: the simulator service runs from this image too, with its SMTP side
RUN pip install ".[simulator]" && rm -rf build *.egg-info

USER otpflow
# API, provider simulator (HTTP and SMTP), Flower
EXPOSE 8000 9000 2525 5555
ENTRYPOINT ["otpflow"]
