"""HTTP: blueprints, schemas and the mapping of domain errors to status codes."""
