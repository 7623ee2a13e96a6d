"""`sandbox:` in a workflow file: parsed into :class:`SandboxSpec`, checked with locations.

Where it may be written, most specific first: a task, the task's agent profile, then
`defaults`. The most specific one that is written wins *as a whole* (settings are not
merged across levels): `true` is the built-in policy, `false` none, and a mapping adjusts
the built-in policy (never the less specific level's mapping), so what a task runs with
can be read off one place. The built-in policy and how paths are resolved (``~`` is the
agent's HOME) live in run/sandboxing.py; here only what the file itself can be wrong about:

* ``network``: `full`, `none`, or a list of ``host:port`` (an IPv6 host in brackets),
  ports 1-65535;
* paths: absolute or under the agent's home (``~`` or ``~/…``), without ``..`` (a path
  that climbs means something else once symlinks resolve), and not ``/`` in
  ``read_write`` (that would undo the sandbox);
* one path in two lists is a contradiction.

Pure string rules like the rest of spec: no filesystem, no environment.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from conductor.errors import Diagnostic
from conductor.spec.model import SandboxSpec
from conductor.spec.yamlsrc import JsonPath, Source, dotted

LISTS = ("read_write", "read_only", "read_deny")
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
ENDPOINT_HINT = "write host:port, e.g. api.anthropic.com:443, 127.0.0.1:8080 or [::1]:8080"
PATH_HINT = "sandbox paths are absolute (/var/cache/x) or in the agent's home (~/.cache/x)"


def parse_endpoint(text: str) -> tuple[str, int] | str:
    """``host:port`` → (host, port); a string saying what is wrong otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        return f"`{text}` has no port"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"`{text}`: the port must be a number from 1 to 65535"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"`{text}`: `{host}` is not an IPv6 address"
        return host, int(port)
    if ":" in host:
        return f"`{text}`: put an IPv6 address in brackets, e.g. [::1]:{port}"
    if not _HOST.match(host):
        return f"`{text}`: `{host}` is not a host name or address"
    return host.rstrip(".").lower(), int(port)


def path_problem(text: str, key: str) -> str | None:
    """Why ``text`` cannot be a path in the sandbox list ``key``, or None."""
    if not (text.startswith("/") or text == "~" or text.startswith("~/")):
        if text.startswith("~"):
            return f"`{text}`: only the agent's own home can be named with ~ (write ~/…)"
        return f"`{text}` is a relative path"
    if ".." in text.split("/"):
        return f"`{text}` contains `..`"
    if key == "read_write" and text.rstrip("/") == "":
        return "`/` cannot be writable: that would undo the sandbox"
    return None


def normal(text: str) -> str:
    """The path as compared between lists: no trailing or doubled slashes, no `.`."""
    head = "~" if text.startswith("~") else ""
    parts = [p for p in text[len(head) :].split("/") if p not in ("", ".")]
    return head + "/" + "/".join(parts) if parts else head or "/"


# ------------------------------------------------------------------ the model


def _spec(raw: Any) -> SandboxSpec | None:
    if raw is False or raw is None:
        return None
    if raw is True:
        return SandboxSpec()
    network = raw.get("network")
    return SandboxSpec(
        network=tuple(network) if isinstance(network, list) else network,
        read_write=tuple(normal(p) for p in raw.get("read_write", ())),
        read_only=tuple(normal(p) for p in raw.get("read_only", ())),
        read_deny=tuple(normal(p) for p in raw.get("read_deny", ())),
    )


class SandboxResolver:
    """The sandbox each task runs with; one SandboxSpec per distinct `sandbox:` node."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.agents = data.get("agents") or {}
        self.default = (data.get("defaults") or {}).get("sandbox")
        self._built: dict[int, SandboxSpec | None] = {}

    def for_task(self, task: dict[str, Any], agent: str) -> SandboxSpec | None:
        raw = task.get("sandbox")
        if raw is None:
            raw = (self.agents.get(agent) or {}).get("sandbox")
        if raw is None:
            raw = self.default
        key = id(raw)
        if key not in self._built:
            self._built[key] = _spec(raw)
        return self._built[key]


# ------------------------------------------------------------------ the checks


def _places(data: dict[str, Any]) -> list[tuple[JsonPath, Any]]:
    out: list[tuple[JsonPath, Any]] = []
    defaults = data.get("defaults")
    if isinstance(defaults, dict) and "sandbox" in defaults:
        out.append((("defaults", "sandbox"), defaults["sandbox"]))
    for section in ("agents", "tasks"):
        items = data.get(section)
        for name, node in (items.items() if isinstance(items, dict) else ()):
            if isinstance(node, dict) and "sandbox" in node:
                out.append(((section, name, "sandbox"), node["sandbox"]))
    return out


def _network_problems(src: Source, path: JsonPath, network: Any) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for i, item in enumerate(network if isinstance(network, list) else []):
        if isinstance(item, str) and isinstance(why := parse_endpoint(item), str):
            where = (*path, "network", i)
            out.append(src.diag(where, f"{dotted(where)}: {why}", ENDPOINT_HINT))
    return out


_TWICE_HINT = ("name each path in one list: read_deny hides it, read_only shows it, "
               "read_write lets the agent change it")  # fmt: skip


def _path_problems(src: Source, path: JsonPath, node: dict[str, Any]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: dict[str, str] = {}
    for key in LISTS:
        items = node.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, str):
                continue  # the schema's to report
            where = (*path, key, i)
            why = path_problem(item, key)
            first = seen.setdefault(normal(item), key) if why is None else key
            if first != key:
                why = f"`{item}` is also in {dotted((*path, first))}"
            if why is not None:
                hint = PATH_HINT if first == key else _TWICE_HINT
                out.append(src.diag(where, f"{dotted(where)}: {why}", hint))
    return out


def sandbox_problems(src: Source) -> list[Diagnostic]:
    """What is wrong in the file's `sandbox:` settings beyond their types (the schema's)."""
    out: list[Diagnostic] = []
    for path, node in _places(src.data):
        if isinstance(node, dict):
            out += _network_problems(src, path, node.get("network"))
            out += _path_problems(src, path, node)
    return out
