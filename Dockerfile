# Airflow with Kubernaut installed as a package (its console script, entry points and
# providers), the DAG entry file, the intake plugin and the remediation templates.
#   docker compose build        (docker-compose.yaml builds this image)
FROM apache/airflow:3.3.2-python3.11

# The exact versions CI and the tests use; apache-airflow is pinned there, so pip keeps the
# image's Airflow.
COPY --chown=airflow:0 constraints.txt pyproject.toml README.md /opt/kubernaut/
COPY --chown=airflow:0 include /opt/kubernaut/include
RUN pip install --no-cache-dir -c /opt/kubernaut/constraints.txt "/opt/kubernaut[celery]" \
    && kubernaut --help > /dev/null

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 templates /opt/airflow/templates
