"""The plan of tasks and the doit glue: task dicts, the reporter, the JSON report and the workspace lock."""
