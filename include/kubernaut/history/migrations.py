"""Versioned schema of the remediation history. Append migrations; never edit applied ones."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "runs, steps, undo journal, outcomes, alert decisions",
        """
        CREATE TABLE kubernaut_runs (
            id               BIGSERIAL PRIMARY KEY,
            dag_id           TEXT NOT NULL,
            dag_run_id       TEXT NOT NULL,
            template         TEXT NOT NULL,
            alert_fingerprint TEXT NOT NULL DEFAULT '',
            alert_name       TEXT NOT NULL DEFAULT '',
            target_kind      TEXT NOT NULL DEFAULT '',
            target_namespace TEXT NOT NULL DEFAULT '',
            target_name      TEXT NOT NULL DEFAULT '',
            dry_run          BOOLEAN NOT NULL DEFAULT FALSE,
            status           TEXT NOT NULL DEFAULT 'running',
            detail           TEXT NOT NULL DEFAULT '',
            started_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at      TIMESTAMPTZ,
            UNIQUE (dag_id, dag_run_id)
        );
        CREATE INDEX kubernaut_runs_target ON kubernaut_runs (target_namespace, target_name, started_at DESC);
        CREATE INDEX kubernaut_runs_alert ON kubernaut_runs (alert_name, started_at DESC);
        CREATE INDEX kubernaut_runs_template ON kubernaut_runs (template, started_at DESC);

        CREATE TABLE kubernaut_steps (
            id           BIGSERIAL PRIMARY KEY,
            run_id       BIGINT NOT NULL REFERENCES kubernaut_runs (id) ON DELETE CASCADE,
            step         TEXT NOT NULL,
            action       TEXT NOT NULL,
            parameters   JSONB NOT NULL DEFAULT '{}',
            result       JSONB,
            status       TEXT NOT NULL DEFAULT 'running',
            error        TEXT NOT NULL DEFAULT '',
            attempts     INTEGER NOT NULL DEFAULT 0,
            started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at  TIMESTAMPTZ,
            duration_ms  INTEGER,
            UNIQUE (run_id, step)
        );

        CREATE TABLE kubernaut_undo_journal (
            id            BIGSERIAL PRIMARY KEY,
            run_id        BIGINT NOT NULL REFERENCES kubernaut_runs (id) ON DELETE CASCADE,
            step          TEXT NOT NULL,
            action        TEXT NOT NULL,
            parameters    JSONB NOT NULL DEFAULT '{}',
            prior_state   JSONB NOT NULL,
            recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            rollback_mode TEXT NOT NULL DEFAULT 'undo',
            undo_status   TEXT NOT NULL DEFAULT 'pending',
            undo_result   JSONB,
            undo_attempts INTEGER NOT NULL DEFAULT 0,
            undone_at     TIMESTAMPTZ,
            UNIQUE (run_id, step)
        );

        CREATE TABLE kubernaut_outcomes (
            id          BIGSERIAL PRIMARY KEY,
            run_id      BIGINT NOT NULL REFERENCES kubernaut_runs (id) ON DELETE CASCADE,
            kind        TEXT NOT NULL,
            outcome     TEXT NOT NULL,
            detail      JSONB NOT NULL DEFAULT '{}',
            recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        CREATE TABLE kubernaut_alert_decisions (
            id               BIGSERIAL PRIMARY KEY,
            received_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            fingerprint      TEXT NOT NULL DEFAULT '',
            alert_name       TEXT NOT NULL DEFAULT '',
            alert_status     TEXT NOT NULL DEFAULT '',
            decision         TEXT NOT NULL,
            reason           TEXT NOT NULL DEFAULT '',
            template         TEXT NOT NULL DEFAULT '',
            dag_id           TEXT NOT NULL DEFAULT '',
            dag_run_id       TEXT NOT NULL DEFAULT '',
            target_kind      TEXT NOT NULL DEFAULT '',
            target_namespace TEXT NOT NULL DEFAULT '',
            target_name      TEXT NOT NULL DEFAULT '',
            labels           JSONB NOT NULL DEFAULT '{}'
        );
        CREATE INDEX kubernaut_decisions_fingerprint
            ON kubernaut_alert_decisions (fingerprint, received_at DESC);
        """,
    ),
    (
        2,
        "index alert decisions by target (intake busy/cooldown checks)",
        """
        CREATE INDEX kubernaut_decisions_target
            ON kubernaut_alert_decisions (target_namespace, target_name, received_at DESC);
        """,
    ),
    (
        3,
        "index launch records by run id (intake duplicate check without Airflow)",
        """
        CREATE INDEX kubernaut_decisions_launch
            ON kubernaut_alert_decisions (dag_id, dag_run_id)
            WHERE decision IN ('triggered', 'triggering', 'unconfirmed');
        """,
    ),
    (
        4,
        "unblocks: who cleared an ineffective-chain block of a target, when and why",
        """
        CREATE TABLE kubernaut_unblocks (
            id               BIGSERIAL PRIMARY KEY,
            target_kind      TEXT NOT NULL DEFAULT '',
            target_namespace TEXT NOT NULL DEFAULT '',
            target_name      TEXT NOT NULL,
            alert_name       TEXT NOT NULL DEFAULT '',
            cluster          TEXT NOT NULL DEFAULT '',
            unblocked_by     TEXT NOT NULL,
            reason           TEXT NOT NULL DEFAULT '',
            unblocked_at     TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX kubernaut_unblocks_target
            ON kubernaut_unblocks (target_namespace, target_name, unblocked_at DESC);
        """,
    ),
    (
        5,
        "multi-cluster: the cluster (and its Kubernetes connection) of each run and alert decision",
        """
        ALTER TABLE kubernaut_runs
            ADD COLUMN cluster TEXT NOT NULL DEFAULT '',
            ADD COLUMN kube_conn_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE kubernaut_alert_decisions ADD COLUMN cluster TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        6,
        "UI: newest-first pages of runs and decisions with filters, outcomes per run",
        """
        CREATE INDEX kubernaut_runs_started ON kubernaut_runs (started_at DESC, id DESC);
        CREATE INDEX kubernaut_runs_status ON kubernaut_runs (status, started_at DESC, id DESC);
        CREATE INDEX kubernaut_runs_namespace ON kubernaut_runs (target_namespace, started_at DESC, id DESC);
        CREATE INDEX kubernaut_decisions_received ON kubernaut_alert_decisions (received_at DESC, id DESC);
        CREATE INDEX kubernaut_decisions_decision
            ON kubernaut_alert_decisions (decision, received_at DESC, id DESC);
        CREATE INDEX kubernaut_outcomes_run ON kubernaut_outcomes (run_id);
        """,
    ),
    (
        7,
        "effectiveness assessments: one per run (verdict, score, components with evidence)",
        """
        CREATE TABLE kubernaut_assessments (
            id          BIGSERIAL PRIMARY KEY,
            run_id      BIGINT NOT NULL UNIQUE REFERENCES kubernaut_runs (id) ON DELETE CASCADE,
            verdict     TEXT NOT NULL,
            score       DOUBLE PRECISION,
            outcome     TEXT NOT NULL DEFAULT '',
            reasons     JSONB NOT NULL DEFAULT '[]',
            components  JSONB NOT NULL DEFAULT '{}',
            after_s     DOUBLE PRECISION NOT NULL DEFAULT 0,
            window_s    DOUBLE PRECISION NOT NULL DEFAULT 0,
            assessed_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX kubernaut_assessments_assessed ON kubernaut_assessments (assessed_at DESC);
        """,
    ),
    (
        8,
        "escalations sent through notifiers (once per run or alert occurrence and outcome); retention",
        """
        CREATE TABLE kubernaut_escalations (
            id          BIGSERIAL PRIMARY KEY,
            run_id      BIGINT REFERENCES kubernaut_runs (id) ON DELETE CASCADE,
            subject     TEXT NOT NULL,
            kind        TEXT NOT NULL,
            alert_name  TEXT NOT NULL DEFAULT '',
            template    TEXT NOT NULL DEFAULT '',
            target      TEXT NOT NULL DEFAULT '',
            reason      TEXT NOT NULL DEFAULT '',
            url         TEXT NOT NULL DEFAULT '',
            status      TEXT NOT NULL DEFAULT 'sending',
            deliveries  JSONB NOT NULL DEFAULT '[]',
            attempts    INTEGER NOT NULL DEFAULT 1,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (subject, kind)
        );
        CREATE INDEX kubernaut_escalations_run ON kubernaut_escalations (run_id);
        CREATE INDEX kubernaut_escalations_created ON kubernaut_escalations (created_at);
        CREATE INDEX kubernaut_runs_finished ON kubernaut_runs (finished_at) WHERE status <> 'running';
        CREATE INDEX kubernaut_unblocks_at ON kubernaut_unblocks (unblocked_at);
        """,
    ),
]


SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS kubernaut_schema_version (
    version    INTEGER PRIMARY KEY,
    summary    TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
