"""FalkorDB graph provider's configuration checks (no falkordb client: `ductwork validate`)."""

from __future__ import annotations

from typing import Any

from ductwork.connectors.base import Problem
from ductwork.connectors.graph.cypher import shared_problems
from ductwork.connectors.util import duration_problem, env_path, is_ref, unknown_keys

CONFIG_KEYS = {"provider", "host", "port", "username", "password", "graph", "timeout"}


def validate_falkordb(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    env = env_path(definition, config)
    problems = unknown_keys(definition, config, CONFIG_KEYS, "falkordb")
    port = config.get("port", 6379)
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536) \
            and not is_ref(port):
        problems.append(((*env, "port"), "port is a TCP port number"))
    if "password" in config and not is_ref(config["password"]):
        problems.append(((*env, "password"), "password is a secret: write it as ${env.NAME} or "
                         "${secrets.NAME}, never inline"))
    graph = config.get("graph")
    if graph is not None and (not isinstance(graph, str) or not graph):
        problems.append(((*env, "graph"), "graph is the FalkorDB graph (key) name"))
    problem = duration_problem("timeout", config.get("timeout"))
    if problem:
        problems.append(((*env, "timeout"), problem))
    return problems + shared_problems(definition, config)
