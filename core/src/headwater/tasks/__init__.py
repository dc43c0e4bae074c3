"""The task library: ready-made tasks (``ShellTask``) and branching (``case``, ``merge``, ``ifelse``, ``switch``)."""

from headwater.tasks.control_flow import CompareValue, Merge, case, ifelse, merge, switch
from headwater.tasks.shell import ShellTask

__all__ = ["ShellTask", "case", "merge", "ifelse", "switch", "CompareValue", "Merge"]
