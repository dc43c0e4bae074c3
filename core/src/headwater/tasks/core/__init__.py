"""Prefect 1's ``prefect.tasks.core``: constants, collections, functions and operators as tasks."""

from headwater.tasks.core import collections, constants, function, operators
from headwater.tasks.core.collections import Dict, List, Set, Tuple
from headwater.tasks.core.constants import Constant
from headwater.tasks.core.function import FunctionTask

__all__ = ["collections", "constants", "function", "operators", "Constant", "FunctionTask", "List", "Tuple", "Set",
           "Dict"]
