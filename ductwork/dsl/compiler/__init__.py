"""The workflow compiler: base (state, reporting) -> calls -> steps -> workflow."""

from __future__ import annotations

from ductwork.dsl.compiler.workflow import WorkflowCompiler, compile, compile_workflow, tag_of

__all__ = ["WorkflowCompiler", "compile", "compile_workflow", "tag_of"]
