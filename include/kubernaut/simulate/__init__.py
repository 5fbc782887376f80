"""Scenarios and ``kubernaut simulate`` (docs/simulate.md): run a template against a throwaway
sandbox cluster with the step runner Airflow uses, show what each step changed, and judge
whether the fault is fixed (or, when a step fails, whether the rollback left the cluster as
it was)."""

from kubernaut.simulate.engine import RunOptions, ScenarioResult, run_scenario
from kubernaut.simulate.scenario import Scenario, ScenarioFile, load_scenario

__all__ = ["RunOptions", "Scenario", "ScenarioFile", "ScenarioResult", "load_scenario", "run_scenario"]
