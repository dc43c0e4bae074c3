"""The task library: ready-made tasks (``ShellTask``, ``SecretTask``) and branching (``case``, ``merge``, ``ifelse``, ``switch``)."""

from headwater.tasks.control_flow import CompareValue, Merge, case, ifelse, merge, switch
from headwater.tasks.secrets import SecretTask
from headwater.tasks.shell import ShellTask

__all__ = ["ShellTask", "SecretTask", "case", "merge", "ifelse", "switch", "CompareValue", "Merge"]
