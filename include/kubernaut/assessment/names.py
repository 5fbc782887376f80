"""Names the assessment's DAG, task, trigger and events share (stdlib only: the DAG processor,
the workers and the triggerer all import it)."""

ASSESSMENT_DAG_ID = "kubernaut_assessment"
CONF_KEY = "remediation"  # conf["remediation"]: which run is assessed
# The trigger the scheduler starts the assessment task with (start_from_trigger).
RUN_TRIGGER = "kubernaut.triggers.assessment.AssessmentRunTrigger"
# Its events that resume the task in a worker (started by the scheduler, it ends the task in
# the triggerer otherwise).
START_IN_WORKER = "start_in_worker"  # the triggerer had no run to read: execute() starts again
STORED = "stored"  # stored; ``hand_on``: an ineffective run's alert goes on to the next remedy
FAILED = "failed"  # the run cannot be assessed (no remediation named, an unreadable configuration)
