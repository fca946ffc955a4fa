# The panel image (API + worker). No build step beyond pip.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/konbit
COPY . .
RUN python3 -m venv /opt/konbit/.venv && /opt/konbit/.venv/bin/pip install --no-cache-dir -e .
ENV PATH=/opt/konbit/.venv/bin:$PATH KONBIT_DATA_DIR=/var/lib/konbit
VOLUME /var/lib/konbit
EXPOSE 8000
CMD ["sh", "-c", "konbit migrate && exec konbit serve --host 0.0.0.0 --port 8000"]
