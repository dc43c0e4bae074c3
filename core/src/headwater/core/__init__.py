"""The authoring model: tasks, edges, parameters and flows."""
