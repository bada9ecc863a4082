"""The `${...}` expression language: grammar, parser, nodes, checker, evaluator, functions."""
