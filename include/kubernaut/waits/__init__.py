"""Waits: what a step waits for after its change, as data (``WaitSpec``), with one async poll
function per kind (``kubernaut.waits.<module>``) and one loop (``driver.run_wait``) run either
by the triggerer (``kubernaut.triggers.wait.StepWaitTrigger``, no worker slot held) or in the
step's own process (``driver.wait_here``).

Importable without Airflow's DAG bundles: the triggerer loads these from the installed package.
"""

from kubernaut.waits.spec import Done, Failed, Pending, PollResult, WaitOutcome, WaitSpec, WaitSpecError

__all__ = ["Done", "Failed", "Pending", "PollResult", "WaitOutcome", "WaitSpec", "WaitSpecError"]
