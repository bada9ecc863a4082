"""ductwork: durable workflows for Python."""
