#!/usr/bin/env bash
# The test command (README and CI): installs what the tests need, then runs them all.
# Needs root (or passwordless sudo) for the Debian packages and PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Real Prometheus, Alertmanager and Pushgateway for the monitoring and intake tests; Chromium
# for the UI pages (driven by Playwright); docker-compose (v1) validates the compose file.
if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
   || ! command -v prometheus-pushgateway >/dev/null || ! command -v chromium >/dev/null \
   || ! command -v docker-compose >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager prometheus-pushgateway chromium docker-compose >/dev/null
fi

# PostgreSQL (Airflow metadata DB and remediation history in tests): start it if it stopped.
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c constraints.txt -e '.[dev]'
# Test files spread over 3 workers (each its own Airflow home and databases; a file's tests stay
# on one worker, so a module's live stack starts once): most tests wait on live processes.
exec .venv/bin/python -m pytest -n "${KUBERNAUT_TEST_WORKERS:-3}" --dist loadfile "$@"
