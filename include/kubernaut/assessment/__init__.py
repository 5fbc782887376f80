"""Delayed effectiveness assessment of a run: did the problem go away?

``components`` (pure: one function per component over gathered evidence), ``score``
(weights, verdict), ``probes`` (what to read: drift probes from the undo journal, the
``ALERTS`` selector). The waiting and reading happen in ``kubernaut.triggers.assessment``;
the task is ``kubernaut.operators.assess``. See docs/effectiveness.md.
"""

from kubernaut.assessment.components import Component
from kubernaut.assessment.score import VERDICTS, Assessment, Verdict, assess

__all__ = ["VERDICTS", "Assessment", "Component", "Verdict", "assess"]
