"""Graph connectors: embedded ladybug (default) and FalkorDB; shared Cypher helpers in cypher.py."""
