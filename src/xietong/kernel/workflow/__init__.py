"""The workflow engine: BPMN 2.0 and YAML definitions, relational runtime, approval operations."""
