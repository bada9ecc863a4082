"""YAML DSL tests, one module per phase: loader, schema, expressions, compiler, plan runs."""
