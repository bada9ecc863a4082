"""JSON Schemas of product, workflow and test files (shipped as JSON) and their checker."""

# The schemas `ductwork schema` prints; here, not in build.py, so that the command line can
# list them without building any.
SCHEMA_NAMES = ("product", "workflow")
# `ductwork schema tests`: the test-case files' schema, written for editors as it stands.
ALL_SCHEMAS = (*SCHEMA_NAMES, "tests")
