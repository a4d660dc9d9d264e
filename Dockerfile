FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY flow flow
COPY producers producers
COPY worker worker
COPY simulator simulator
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["otpflow"]
