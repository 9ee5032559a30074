"""What a handler gets: :class:`TaskContext`, and the exceptions it may raise.

Why a separate object instead of passing the raw ``task`` frame: the context
names the attempt once, so every ``item``/``progress`` the handler sends is
fenced by the right ``(task_id, attempt)``; it records items so the agent can
re-send them after a reconnect; and it collects the verdict and LLM usage
that go into ``complete``. It mirrors the Rust SDK's ``TaskContext``.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from . import protocol
from .protocol import Task, TaskRef, Usage

if TYPE_CHECKING:
    from .tasks import _LocalTask, _TaskRunner


class Fail(Exception):
    """Raise from a handler to end the attempt with ``fail``.

    ``retryable=True`` (the default) lets the hub try again with backoff up to
    its ``max_attempts``; ``retryable=False`` fails the task at once. Any other
    exception is reported as a retryable ``fail`` too.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class PermanentError(Fail):
    """A failure another attempt cannot fix (invalid input, ...): ``fail``
    with ``retryable: false``, so the hub fails the task at once."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class TaskContext:
    """Handed to every handler call: which attempt it runs, and how it talks
    back to the hub while running.

    Attributes: ``task_id``, ``attempt``, ``job_id``, ``stage``,
    ``capability``, ``correlation_id``, ``input`` (the raw task input),
    ``lease_ms`` (how long the lease lasts without :meth:`progress`).
    """

    def __init__(self, agent: _TaskRunner, local: _LocalTask, task: Task, lease_ms: int) -> None:
        self._agent = agent
        self._local = local
        self.task_id: str = task.task_id
        self.attempt: int = task.attempt
        self.job_id: str = task.job_id
        self.stage: int = task.stage
        self.capability: str = task.capability
        self.correlation_id: str = task.correlation_id
        self.accept_by: str = task.accept_by
        self.input: Any = task.input
        self.lease_ms: int = lease_ms
        self._rejection: str | None = None
        self._usage = Usage()

    @property
    def ref(self) -> TaskRef:
        return TaskRef(self.task_id, self.attempt)

    async def item(self, data: Any, *, item_id: str | None = None) -> str:
        """Emits one result item and returns its id (a fresh UUIDv7 unless given).

        The item is remembered for this attempt and re-sent after a reconnect
        (the hub stores an item id once). It becomes the input of one
        next-stage task only if the attempt completes. ``data`` must be JSON
        serialisable (``TypeError``/``ValueError`` otherwise). Emitting for a
        finished or cancelled attempt sends nothing.
        """
        protocol.encode({"data": data})  # fail here, in the handler, not later
        item_id = item_id or protocol.uuid7()
        self._agent._on_item(self._local, protocol.item(self.ref, item_id, data))
        await asyncio.sleep(0)  # let the writer run between many items
        return item_id

    emit_item = item

    async def progress(self, percent: float | None = None, message: str | None = None) -> None:
        """Reports progress (``percent`` 0..100 when known, a message for
        people). Renews the attempt's lease. Sent only while connected."""
        self._agent._on_progress(self._local, protocol.progress(self.ref, percent, message))
        await asyncio.sleep(0)

    def reject(self, reason: str) -> None:
        """When the handler returns normally, ``complete`` carries
        ``verdict: rejected`` and this reason (the last call wins)."""
        self._rejection = reason

    def report_usage(
        self, tokens_in: int = 0, tokens_out: int = 0, requests: int = 0, model: str | None = None
    ) -> None:
        """Adds LLM usage to what ``complete`` reports (counts add up; the
        last ``model`` named is kept)."""
        self._usage.tokens_in += tokens_in
        self._usage.tokens_out += tokens_out
        self._usage.requests += requests
        if model is not None:
            self._usage.model = model

    @property
    def is_cancelled(self) -> bool:
        """Whether the hub cancelled this attempt (the handler's asyncio task
        is then cancelled too, so most handlers need not check this)."""
        return self._local.dropped

    def _complete_message(self, output: Any) -> dict[str, Any]:
        json.dumps(output, allow_nan=False)  # raises TypeError/ValueError
        verdict = "rejected" if self._rejection is not None else "accepted"
        return protocol.complete(self.ref, output, verdict=verdict, reason=self._rejection, usage=self._usage)
