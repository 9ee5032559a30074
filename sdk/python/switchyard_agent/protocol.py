"""The Switchyard agent wire protocol: building and parsing JSON frames.

Why a module of its own: this is the only place that knows field names and
defaults, so it can be unit-tested without a network and checked line by line
against ``docs/protocol.md`` and the Rust definitions in
``agent-sdk/src/protocol.rs`` (the single source of truth).

Messages *to* the hub are plain ``dict``s built by small functions
(:func:`hello`, :func:`accept`, :func:`complete`, ...) and serialised with
:func:`encode`. Messages *from* the hub are parsed by :func:`decode` into
frozen dataclasses (:class:`Welcome`, :class:`Task`, ...). As the protocol
says, unknown fields are ignored; an unknown ``type`` or a missing/mistyped
required field raises :class:`ProtocolError` (the agent logs and ignores such
a frame, like the Rust SDK).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

PROTOCOL_VERSION = 1
"""The protocol version this package speaks (``hello.protocol``)."""

AGENT_PATH = "/v1/agents/connect"
"""The hub's agent endpoint, appended to a URL given without a path."""

PERMANENT_HELLO_ERRORS = frozenset(
    {
        "unauthorized",
        "forbidden",
        "name_mismatch",
        "unsupported_protocol",
        "invalid_message",
        "invalid_hello",
    }
)
"""``error`` codes in answer to ``hello`` after which retrying the same hello
cannot succeed: the agent stops instead of reconnecting."""

TASK_GONE_ERRORS = frozenset({"stale_attempt", "unknown_task"})
"""``error`` codes naming a task that mean the attempt is no longer ours."""

TRANSIENT_ERRORS = frozenset({"rate_limited", "internal", "unavailable"})
"""``error`` codes that refuse a message only for now."""

MAX_RESULT_REFUSALS = 5
"""Transient refusals of one result before the agent stops re-sending it."""

HEALTH_STATES = ("active", "degraded")


class ProtocolError(ValueError):
    """A frame from the hub that is not a message this package understands."""


# ------------------------------------------------------------------ helpers


def uuid7() -> str:
    """A fresh UUIDv7 (time-ordered), as the protocol recommends for item ids.

    Python < 3.14 has no ``uuid.uuid7``; this is the RFC 9562 layout: 48 bits
    of Unix milliseconds, version 7, 74 random bits, variant 10.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)  # rand_b: 62 bits
    return str(uuid.UUID(int=value))


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds, e.g. ``...T13:40:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_url(url: str) -> str:
    """Brings a hub URL into the form the agent connects to.

    ``http://`` becomes ``ws://`` and ``https://`` becomes ``wss://``; a URL
    without a path gets ``/v1/agents/connect`` (as in the Rust SDK, which
    however refuses TLS; Python's ``websockets`` speaks ``wss://`` natively).
    """
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"invalid hub URL {url!r}: expected ws://host:port{AGENT_PATH}")
    if not parts.netloc:
        raise ValueError(f"invalid hub URL {url!r}: no host")
    path = parts.path if parts.path not in ("", "/") else AGENT_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def encode(message: Mapping[str, Any]) -> str:
    """One message as the JSON text of one frame (compact, UTF-8)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ----------------------------------------------------------- agent -> hub


@dataclass(frozen=True)
class Pricing:
    """What a capability costs, for the hub's cost reports."""

    currency: str = ""
    per_1k_input_tokens: float = 0.0
    per_1k_output_tokens: float = 0.0
    per_request: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "per_1k_input_tokens": float(self.per_1k_input_tokens),
            "per_1k_output_tokens": float(self.per_1k_output_tokens),
            "per_request": float(self.per_request),
        }


@dataclass(frozen=True)
class Capability:
    """One thing an agent can do, as declared in ``hello``."""

    name: str
    version: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    output_schema: Mapping[str, Any] = field(default_factory=dict)
    pricing: Pricing = field(default_factory=Pricing)
    max_concurrency: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "input_schema": dict(self.input_schema),
            "output_schema": dict(self.output_schema),
            "pricing": self.pricing.to_json(),
            "max_concurrency": self.max_concurrency,
        }


@dataclass(frozen=True)
class TaskRef:
    """Names one attempt of one task: every message about a task carries it."""

    task_id: str
    attempt: int

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "attempt": self.attempt}


@dataclass
class Usage:
    """LLM usage of one attempt, reported in ``complete.usage``."""

    tokens_in: int = 0
    tokens_out: int = 0
    requests: int = 0
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "requests": self.requests,
            "model": self.model,
        }


def hello(
    name: str,
    capabilities: list[Capability],
    *,
    version: str = "",
    labels: Mapping[str, str] | None = None,
    resume: list[TaskRef] | None = None,
) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "name": name,
        "version": version,
        "capabilities": [c.to_json() for c in capabilities],
        "labels": dict(labels or {}),
        "resume": [t.to_json() for t in resume or []],
    }


def heartbeat(
    *,
    status: str = "active",
    uptime_ms: int = 0,
    load: float = 0.0,
    metrics: Mapping[str, Any] | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    if status not in HEALTH_STATES:
        raise ValueError(f"status must be one of {HEALTH_STATES}, got {status!r}")
    return {
        "type": "heartbeat",
        "timestamp": timestamp or now_rfc3339(),
        "status": status,
        "uptime_ms": int(uptime_ms),
        "load": min(max(float(load), 0.0), 1.0),
        "metrics": dict(metrics or {}),
    }


def accept(task: TaskRef) -> dict[str, Any]:
    return {"type": "accept", **task.to_json()}


def progress(task: TaskRef, percent: float | None = None, message: str | None = None) -> dict[str, Any]:
    if percent is not None:
        percent = min(max(float(percent), 0.0), 100.0)
    return {"type": "progress", **task.to_json(), "percent": percent, "message": message}


def item(task: TaskRef, item_id: str, data: Any) -> dict[str, Any]:
    return {"type": "item", **task.to_json(), "item_id": item_id, "data": data}


def complete(
    task: TaskRef,
    output: Any = None,
    *,
    verdict: str = "accepted",
    reason: str | None = None,
    usage: Usage | None = None,
) -> dict[str, Any]:
    if verdict not in ("accepted", "rejected"):
        raise ValueError(f"verdict must be 'accepted' or 'rejected', got {verdict!r}")
    return {
        "type": "complete",
        **task.to_json(),
        "output": output,
        "verdict": verdict,
        "reason": reason,
        "usage": (usage or Usage()).to_json(),
    }


def fail(task: TaskRef, error: str, retryable: bool = True) -> dict[str, Any]:
    return {"type": "fail", **task.to_json(), "error": error, "retryable": retryable}


def decline(task: TaskRef, reason: str | None = None) -> dict[str, Any]:
    return {"type": "decline", **task.to_json(), "reason": reason}


def drain() -> dict[str, Any]:
    return {"type": "drain"}


# ----------------------------------------------------------- hub -> agent


@dataclass(frozen=True)
class Welcome:
    protocol: int
    agent_id: str
    session_id: str
    heartbeat_interval_ms: int
    lease_ms: int
    accept_timeout_ms: int
    resumed: tuple[TaskRef, ...] = ()
    hubs: tuple[str, ...] = ()
    """The cluster's other live nodes, as base URLs (``http://10.0.0.2:8000``);
    empty for a single hub. The agent adds them to the URLs it tries."""


@dataclass(frozen=True)
class Task:
    """One attempt of one task, pushed by the hub."""

    task_id: str
    attempt: int
    job_id: str
    capability: str
    stage: int
    input: Any
    accept_by: str
    correlation_id: str

    @property
    def ref(self) -> TaskRef:
        return TaskRef(self.task_id, self.attempt)


@dataclass(frozen=True)
class Cancel:
    task_id: str
    attempt: int
    reason: str

    @property
    def ref(self) -> TaskRef:
        return TaskRef(self.task_id, self.attempt)


@dataclass(frozen=True)
class Ack:
    task_id: str
    attempt: int
    of: str
    item_id: str | None = None

    @property
    def ref(self) -> TaskRef:
        return TaskRef(self.task_id, self.attempt)


@dataclass(frozen=True)
class Error:
    code: str
    message: str
    task_id: str | None = None


@dataclass(frozen=True)
class Shutdown:
    reason: str
    reconnect_after_ms: int | None = None
    hubs: tuple[str, ...] = ()
    """Other live nodes to reconnect to instead of this one (base URLs);
    empty: come back to this one."""


HubMessage = Welcome | Task | Cancel | Ack | Error | Shutdown


def _get(obj: Mapping[str, Any], kind: str, key: str, types: type | tuple[type, ...], *, default: Any = ...) -> Any:
    """A field of a hub message, type-checked; ``default`` makes it optional
    (``null`` then also means the default)."""
    value = obj.get(key)
    if value is None:
        if default is ...:
            raise ProtocolError(f"`{kind}` message has no `{key}`")
        return default
    # bool is an int in Python; the protocol never means a boolean by a number.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ProtocolError(f"`{kind}` message is not valid at `{key}`: expected {types}, found a boolean")
    if not isinstance(value, types):
        raise ProtocolError(f"`{kind}` message is not valid at `{key}`: found {type(value).__name__}")
    return value


def _task_ref(obj: Any, kind: str) -> TaskRef:
    if not isinstance(obj, Mapping):
        raise ProtocolError(f"`{kind}` message: a task reference must be an object")
    return TaskRef(_get(obj, kind, "task_id", str), _get(obj, kind, "attempt", int))


def _urls(obj: Mapping[str, Any], kind: str) -> tuple[str, ...]:
    """The optional ``hubs`` field: an array of strings, default ``[]``."""
    urls = _get(obj, kind, "hubs", list, default=[])
    if not all(isinstance(u, str) for u in urls):
        raise ProtocolError(f"`{kind}` message is not valid at `hubs`: expected an array of strings")
    return tuple(urls)


def decode(text: str | bytes) -> HubMessage:
    """Parses one frame from the hub; raises :class:`ProtocolError`."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"the frame is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("the frame is not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("the message has no `type` string")
    g = lambda key, types, **kw: _get(obj, kind, key, types, **kw)  # noqa: E731
    if kind == "welcome":
        resumed = g("resumed", list, default=[])
        return Welcome(
            protocol=g("protocol", int),
            agent_id=g("agent_id", str),
            session_id=g("session_id", str),
            heartbeat_interval_ms=g("heartbeat_interval_ms", int),
            lease_ms=g("lease_ms", int),
            accept_timeout_ms=g("accept_timeout_ms", int),
            resumed=tuple(_task_ref(r, kind) for r in resumed),
            hubs=_urls(obj, kind),
        )
    if kind == "task":
        if "input" not in obj:
            raise ProtocolError("`task` message has no `input`")
        return Task(
            task_id=g("task_id", str),
            attempt=g("attempt", int),
            job_id=g("job_id", str),
            capability=g("capability", str),
            stage=g("stage", int),
            input=obj["input"],
            accept_by=g("accept_by", str),
            correlation_id=g("correlation_id", str),
        )
    if kind == "cancel":
        return Cancel(g("task_id", str), g("attempt", int), g("reason", str))
    if kind == "ack":
        return Ack(g("task_id", str), g("attempt", int), g("of", str), g("item_id", str, default=None))
    if kind == "error":
        return Error(g("code", str), g("message", str), g("task_id", str, default=None))
    if kind == "shutdown":
        return Shutdown(g("reason", str), g("reconnect_after_ms", int, default=None), _urls(obj, kind))
    raise ProtocolError(f"unknown message type `{kind}`")
