"""Kubernaut's pages in the Airflow UI (Remediations, Decisions, Templates) and /kubernaut/metrics.

The app (``kubernaut.ui.app``) lives under the intake's ``/kubernaut`` prefix. Two plugin apps
cannot share a mount prefix (the first mount answers every path below it, and Airflow mounts
plugins in directory-listing order), so this plugin routes exactly its own paths,
``/kubernaut/ui/...`` and ``/kubernaut/metrics``, to its app with a root middleware (an
Airflow 3 plugin extension point) and leaves every other path, the intake's included, alone.
Airflow's own middlewares (JWT refresh, access log) still wrap these requests, and the pages
use Airflow's login and permissions. ``external_views`` put the pages in the UI's navigation
(embedded: same origin, so the UI's login cookie applies).
"""

from airflow.plugins_manager import AirflowPlugin

from kubernaut.ui.plugin import UI_VIEWS, KubernautUiRoutes


class KubernautUiPlugin(AirflowPlugin):
    name = "kubernaut_ui"
    fastapi_root_middlewares = [
        {"middleware": KubernautUiRoutes, "args": [], "kwargs": {}, "name": "Kubernaut remediations UI"}
    ]
    external_views = UI_VIEWS
