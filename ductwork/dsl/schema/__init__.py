"""JSON Schemas of product, workflow and test files (shipped as JSON) and their checker."""
