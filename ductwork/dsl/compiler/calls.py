"""Component call bodies: resources, events and topics checked against the product."""

from __future__ import annotations

from typing import Any

from ductwork.dsl import plan as p
from ductwork.dsl import vocabulary as v
from ductwork.dsl.compiler.arguments import call_problems
from ductwork.dsl.compiler.base import CompilerBase
from ductwork.dsl.compiler.names import Unproven, choices
from ductwork.dsl.diagnostics import did_you_mean, known
from ductwork.dsl.expr.checker import Scope
from ductwork.dsl.loader import DataPath

# database.<method> -> the `op` its event must declare
_DB_OPS = {"insert": "insert", "query": "query", "update": "update", "delete": "delete",
           "upsert": "upsert", "execute": "sql"}


class CallCompiler(CompilerBase):
    # -- component calls -------------------------------------------------------------------------

    def _call(self, path: DataPath, call: v.Call, args: dict[str, Any], scope: Scope
              ) -> p.Call | None:
        ok = True
        chosen: tuple[str, ...] = ()
        for param in call.params:
            val = args.get(param.name)
            if param.name not in args:
                continue
            ppath = (*path, param.name)
            if param.type in v.STATIC and isinstance(val, str) and "${" in val:
                hint = "resources and events are checked before the run starts"
                if param.name == call.resource:
                    try:
                        chosen = self._chosen_resource(path, call, args, val)
                        continue
                    except Unproven as e:
                        hint = str(e) or hint
                self.fail(ppath, f"'{param.name}' must be a name written out, not an expression",
                          hint)
                ok = False
            elif param.type in (v.LIST, v.MAP) and isinstance(val, str) \
                    and not self.exprs.is_whole(val):
                what = "a list" if param.type == v.LIST else "a mapping"
                form = (f'{param.name}: ["{val}"]' if param.type == v.LIST
                        else f"{param.name}: {{key: value}}")
                self.fail(ppath, f"'{param.name}' must be {what} or one ${{...}} expression, "
                          "not text", f"write {form}")
                ok = False
        if call.key == "healthcheck.get_status":
            self._health_target(path, args)
        resource = self._resource(path, call, args) if ok and not chosen else None
        if resource is not None:
            self._arguments(path, call, resource, args)
        tree = self.exprs.tree(path, args, scope)
        return p.Call(call.component, call.method, resource, tree, self.loc(path), chosen)

    def _chosen_resource(self, path: DataPath, call: v.Call, args: dict[str, Any], text: str
                         ) -> tuple[str, ...]:
        """A resource named by an expression: every name it can produce must be a declared
        resource of the call's kind with the event (or Unproven, with the hint)."""
        assert call.resource is not None
        found = choices((*path, call.resource), text, self.exprs.input_schema)
        event = args.get(call.event) if call.event else None
        for c in found:
            if not self._known_resource(c.path, call.kind, c.name, offset=c.offset):
                continue
            if call.key == "publish.send" and isinstance(event, str):
                self._topic((*path, "event"), c.name, event)
            elif call.event and isinstance(event, str) and "${" not in event:
                self._event((*path, call.event), call, c.name, event)
        return tuple(c.name for c in found)

    def _arguments(self, path: DataPath, call: v.Call, resource: str, args: dict[str, Any]
                   ) -> None:
        """The arguments against the resource's declaration, by the connector's own rules."""
        definition = self.product.resources[call.kind].get(resource)
        if definition is None:
            return
        for where, message in call_problems(call.kind, call.method, definition, args,
                                            self.exprs.input_schema):
            self.fail((*path, *where), str(message), getattr(message, "hint", None),
                      key=getattr(message, "key", False), offset=getattr(message, "offset", None),
                      length=getattr(message, "length", 1))

    def _resource(self, path: DataPath, call: v.Call, args: dict[str, Any]) -> str | None:
        kind = call.kind
        if call.resource is None:  # messaging.produce: event = "<broker>:<topic>"
            event = args.get("event")
            if not isinstance(event, str):
                return None
            broker, sep, topic = event.partition(":")
            if not sep or not broker or not topic or "${" in event:
                return None  # the schema (or the static check above) reported it
            if self._known_resource((*path, "event"), kind, broker):
                self._topic((*path, "event"), broker, topic, offset=len(broker) + 1)
                return broker
            return None
        name = args.get(call.resource)
        if not isinstance(name, str):
            return None
        if not self._known_resource((*path, call.resource), kind, name):
            return None
        if call.key == "publish.send":
            event = args.get("event")
            if isinstance(event, str):
                self._topic((*path, "event"), name, event)
            return name
        if call.event:
            event = args.get(call.event)
            if isinstance(event, str):
                self._event((*path, call.event), call, name, event)
        return name

    def _known_resource(self, path: DataPath, kind: str, name: str, *,
                        offset: int | None = 0) -> bool:
        section = v.KIND_SECTION[kind]
        declared = self.product.resources.get(kind, {})
        if name in declared:
            return True
        if path[-1] == "event":
            offset = None
        other = [k for k, items in self.product.resources.items() if name in items and k != kind]
        if other:
            hint = f"'{name}' is declared under {v.KIND_SECTION[other[0]]}:, not {section}:"
        else:
            hint = did_you_mean(name, declared) or (
                f"{section} declared: {known(declared)}" if declared else
                f"the product declares no {section}: add '{name}' under {section}: in its "
                "product file")
        self.fail(path, f"unknown {v.NOUN[kind]} '{name}'", hint, offset=offset,
                  length=len(name))
        return False

    def _health_target(self, path: DataPath, args: dict[str, Any]) -> None:
        """healthcheck.get_status: the resource is one the product declares, of any kind."""
        name, kind = args.get("resource"), args.get("kind")
        kind = {"app": "action", "messaging": "broker"}.get(kind, kind)  # type: ignore[arg-type]
        if not isinstance(name, str):
            return
        kinds = [k for k in v.SECTIONS.values() if name in self.product.resources.get(k, {})]
        if isinstance(kind, str):
            kinds = [k for k in kinds if k == kind]
        if not kinds:
            names = sorted({n for k in v.SECTIONS.values()
                            for n in self.product.resources.get(k, {})})
            self.fail((*path, "resource"), f"unknown resource '{name}'"
                      + (f" of kind {kind}" if isinstance(kind, str) else ""),
                      did_you_mean(name, names) or f"declared: {known(names)}",
                      length=len(name))
        elif len(kinds) > 1:
            self.fail((*path, "resource"), f"'{name}' names a resource of several kinds "
                      f"({', '.join(kinds)})", f"add kind: {kinds[0]}", length=len(name))

    def _event(self, path: DataPath, call: v.Call, resource: str, event: str) -> None:
        definition = self.product.resources[call.kind][resource]
        block = "actions" if call.event == "action" else "events"
        events = definition.get(block) or {}
        if not isinstance(events, dict):
            return
        if event not in events:
            word = "action" if block == "actions" else "event"
            self.fail(path, f"unknown {word} '{event}' for {v.NOUN[call.kind]} '{resource}'",
                      did_you_mean(event, events) or f"declared: {known(events)}",
                      length=len(event))
            return
        spec = events[event]
        fields = v.CHANNEL_FIELDS.get(call.method) if call.kind == "notification" else None
        if fields and isinstance(spec, dict) and not any(f in spec for f in fields):
            self.fail(path, f"event '{event}' of notification '{resource}' has no "
                      f"{call.method} template", f"give it {' / '.join(fields)}, or use "
                      "another event", length=len(event))
        if call.kind == "database" and isinstance(spec, dict) and isinstance(spec.get("op"), str):
            want = _DB_OPS.get(call.method)
            if want and spec["op"] != want:
                right = next((k for k, op in _DB_OPS.items() if op == spec["op"]), spec["op"])
                self.fail(path, f"event '{event}' of database '{resource}' does "
                          f"'{spec['op']}', not '{want}'", f"call it with database.{right}",
                          length=len(event))

    def _topic(self, path: DataPath, broker: str, topic: str, offset: int = 0) -> None:
        topics = self.product.resources["broker"][broker].get("topics")
        if isinstance(topics, dict) and topic not in topics:
            self.fail(path, f"unknown topic '{topic}' for broker '{broker}'",
                      did_you_mean(topic, topics) or f"declared: {known(topics)}",
                      offset=offset, length=len(topic))
