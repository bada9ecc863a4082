"""A minimal LSP client over stdio (JSON-RPC, Content-Length framing) for yaml-language-server."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER = HERE / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
TIMEOUT = 60.0  # a bound on waiting for an answer, not a speed assertion


def server_missing() -> str | None:
    """Why the server cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (.ci/run installs it)"
    if not SERVER.exists():
        return "yaml-language-server is not installed: npm ci --prefix tests/editor"
    return None


class LanguageServer:
    """yaml-language-server in a subprocess; requests wait for their answer, notifications
    (publishDiagnostics) are kept by document URI."""

    def __init__(self, schemas: dict[str, list[str]], root: Path) -> None:
        self.proc = subprocess.Popen(["node", str(SERVER), "--stdio"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._id = 0
        self.settings = {"yaml": {
            "schemas": schemas, "validate": True, "hover": True, "completion": True,
            "format": {"enable": False}, "schemaStore": {"enable": False}}}
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._diagnostics: dict[str, queue.Queue[list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.request("initialize", {
            "processId": None, "rootUri": root.as_uri(),
            "capabilities": {"workspace": {"configuration": True}, "textDocument": {
                "completion": {"completionItem": {"snippetSupport": True,
                                                  "documentationFormat": ["markdown"]}},
                "hover": {"contentFormat": ["markdown", "plaintext"]},
                "publishDiagnostics": {}}},
            "initializationOptions": {}})
        self.notify("initialized", {})
        # The server pulls its settings (workspace/configuration) when told they changed.
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings})
        self._versions: dict[str, int] = {}

    # -- transport ------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            self.proc.stdin.flush()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(out.read(length))
            if "id" in message and "method" in message:  # a request from the server
                self._send({"id": message["id"], "result": self._answer(message)})
            elif "id" in message:
                self._answers.setdefault(message["id"], queue.Queue()).put(message)
            elif message.get("method") == "textDocument/publishDiagnostics":
                params = message["params"]
                self._diagnostics.setdefault(params["uri"], queue.Queue()).put(
                    params["diagnostics"])

    def _answer(self, message: dict[str, Any]) -> Any:
        if message["method"] == "workspace/configuration":
            return [self.settings.get(item.get("section", ""))
                    for item in message["params"]["items"]]
        return None

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self._id += 1
        box = self._answers.setdefault(self._id, queue.Queue())
        self._send({"id": self._id, "method": method, "params": params})
        answer = box.get(timeout=TIMEOUT)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result")

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    # -- documents ------------------------------------------------------------------------------
    def open(self, uri: str, text: str) -> list[dict[str, Any]]:
        """Open (or replace) a document; its diagnostics once the server has validated it."""
        box = self._diagnostics.setdefault(uri, queue.Queue())
        while not box.empty():
            box.get_nowait()
        version = self._versions.get(uri, 0) + 1
        self._versions[uri] = version
        if version == 1:
            self.notify("textDocument/didOpen", {"textDocument": {
                "uri": uri, "languageId": "yaml", "version": version, "text": text}})
        else:
            self.notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": text}]})
        return box.get(timeout=TIMEOUT)

    def completion(self, uri: str, line: int, character: int) -> list[dict[str, Any]]:
        result = self.request("textDocument/completion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
        items = result.get("items", []) if isinstance(result, dict) else result or []
        return list(items)

    def hover(self, uri: str, line: int, character: int) -> str:
        result = self.request("textDocument/hover", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
        if not result:
            return ""
        contents = result["contents"]
        return str(contents.get("value", "") if isinstance(contents, dict) else contents)

    def close(self) -> None:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            self.proc.wait(10)
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
