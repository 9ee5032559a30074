"""Running tasks: accepting or declining pushes, running handlers, keeping results.

Why a layer of its own: what the agent owes the hub about each attempt does
not depend on whether a socket is open right now. :class:`_TaskRunner`
therefore knows nothing about sockets. It keeps the table of local tasks and
queues every frame through ``_send``, which the session layer
(``session._SessionLoop``, its subclass) provides and which returns
``False`` while offline.

**Local tasks outlive sessions.** Each accepted attempt is a
:class:`_LocalTask` holding its handler's asyncio task, every item it
emitted and, once the handler returned, its ``complete``/``fail``. It is
forgotten only when the hub acks the result, cancels the attempt, refuses it
as stale, or leaves it out of ``welcome.resumed``. After a reconnect the
session layer re-sends its items and result (the hub stores an item id once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import protocol
from .context import Fail, TaskContext
from .protocol import (
    MAX_RESULT_REFUSALS,
    TASK_GONE_ERRORS,
    TRANSIENT_ERRORS,
    Ack,
    Cancel,
    Capability,
    Error,
    Task,
    TaskRef,
)

log = logging.getLogger("switchyard_agent")

Handler = Callable[[TaskContext, Any], Awaitable[Any]]
"""``async def handler(ctx, input) -> output``: the return value becomes
``complete.output``; an exception becomes ``fail``."""

DeclineFilter = Callable[[Task], "str | None"]
"""Called on every push before accepting; a returned string declines the push
with that reason."""


@dataclass
class _LocalTask:
    """An attempt this agent runs, or whose result the hub has not acked yet."""

    task: Task
    handle: asyncio.Task[None] | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    result_sent_at: float | None = None
    result_refusals: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    dropped: bool = False

    @property
    def ref(self) -> TaskRef:
        return self.task.ref

    @property
    def running(self) -> bool:
        return self.result is None and not self.dropped


@dataclass
class _Registered:
    capability: Capability
    handler: Handler
    decline_if: DeclineFilter | None


class _TaskRunner:
    """The local task table and everything that happens to one attempt."""

    def __init__(self) -> None:
        self._caps: dict[str, _Registered] = {}
        self._tasks: dict[str, _LocalTask] = {}
        self._pending_declines: dict[TaskRef, float] = {}  # sent, not acked yet
        self._draining = False
        self._stopped = False
        self._lease_ms = 60_000  # from the last `welcome`

    # ---------------------------------------------- provided by the session layer

    def _send(self, msg: dict[str, Any]) -> bool:
        """Queues a frame on the current session; ``False`` when offline."""
        raise NotImplementedError

    def _poke(self) -> None:
        """A task went away: wakes whoever waits for the drain to finish."""
        raise NotImplementedError

    def _check_drained(self) -> None:
        """Ends the session if a drain has nothing left to wait for."""
        raise NotImplementedError

    # ---------------------------------------------- pushes

    def _decline(self, task: Task, reason: str) -> None:
        log.info("declining task %s attempt %d: %s", task.task_id, task.attempt, reason)
        if self._send(protocol.decline(task.ref, reason)):
            self._pending_declines[task.ref] = time.monotonic()

    def _on_task(self, task: Task) -> None:
        if self._draining:
            return self._decline(task, "draining")
        registered = self._caps.get(task.capability)
        if registered is None:
            return self._decline(task, f"no handler for capability `{task.capability}`")
        existing = self._tasks.get(task.task_id)
        if existing is not None:
            if existing.ref.attempt == task.attempt:
                # Pushed again (e.g. our accept was lost): accept again, run once.
                self._send(protocol.accept(task.ref))
                return
            if existing.ref.attempt > task.attempt:
                log.warning("ignoring a push of an older attempt of task %s", task.task_id)
                return
            self._drop(task.task_id)
        limit = registered.capability.max_concurrency
        running = sum(1 for t in self._tasks.values() if t.running and t.task.capability == task.capability)
        if running >= limit:
            return self._decline(task, f"at capacity: {running} of {limit} `{task.capability}` tasks running")
        if registered.decline_if is not None:
            try:
                reason = registered.decline_if(task)
            except Exception as e:  # a broken filter must not take the agent down
                log.exception("decline_if raised")
                reason = f"decline_if raised {type(e).__name__}: {e}"
            if reason:
                return self._decline(task, reason)
        if not self._send(protocol.accept(task.ref)):
            return
        log.info(
            "accepted task %s attempt %d (%s, job %s, correlation %s)",
            task.task_id, task.attempt, task.capability, task.job_id, task.correlation_id,
        )
        local = _LocalTask(task)
        ctx = TaskContext(self, local, task, self._lease_ms)
        self._tasks[task.task_id] = local
        local.handle = asyncio.create_task(
            self._run_handler(local, ctx, registered.handler), name=f"switchyard-task-{task.task_id}"
        )

    # ---------------------------------------------- the handler and what it sends

    async def _run_handler(self, local: _LocalTask, ctx: TaskContext, handler: Handler) -> None:
        ref = local.ref
        try:
            output = await handler(ctx, local.task.input)
        except asyncio.CancelledError:
            if local.dropped or self._stopped:
                return
            msg = protocol.fail(ref, "the handler was cancelled", retryable=True)
        except Fail as e:
            msg = protocol.fail(ref, e.message, e.retryable)
        except Exception as e:
            log.exception("the handler of task %s raised", ref.task_id)
            msg = protocol.fail(ref, f"{type(e).__name__}: {e}", retryable=True)
        else:
            try:
                msg = ctx._complete_message(output)
            except (TypeError, ValueError) as e:
                msg = protocol.fail(ref, f"cannot serialize the task output: {e}", retryable=False)
        self._on_result(local, msg)

    def _is_current(self, local: _LocalTask) -> bool:
        return not local.dropped and self._tasks.get(local.task.task_id) is local

    def _on_result(self, local: _LocalTask, msg: dict[str, Any]) -> None:
        if not self._is_current(local) or local.result is not None:
            return
        local.result = msg
        log.info("task %s attempt %d: %s", local.ref.task_id, local.ref.attempt, msg["type"])
        if self._send(msg):
            local.result_sent_at = time.monotonic()

    def _on_item(self, local: _LocalTask, msg: dict[str, Any]) -> None:
        if not self._is_current(local) or not local.running:
            return
        local.items.append(msg)
        self._send(msg)

    def _on_progress(self, local: _LocalTask, msg: dict[str, Any]) -> None:
        if not self._is_current(local) or not local.running:
            return
        local.last_progress = time.monotonic()
        self._send(msg)

    # ---------------------------------------------- what the hub says about tasks

    def _on_cancel(self, msg: Cancel) -> None:
        if self._owns(msg.ref):
            log.info("task %s attempt %d cancelled by the hub: %s", msg.task_id, msg.attempt, msg.reason)
            self._drop(msg.task_id)

    def _on_ack(self, msg: Ack) -> None:
        if msg.of in ("complete", "fail") and self._owns(msg.ref):
            if self._tasks[msg.task_id].result is not None:
                log.debug("%s of task %s acknowledged", msg.of, msg.task_id)
                del self._tasks[msg.task_id]
                self._poke()
        elif msg.of == "decline":
            self._pending_declines.pop(msg.ref, None)
            self._check_drained()

    def _on_error(self, e: Error) -> None:
        log.warning("the hub reported an error: %s: %s (task %s)", e.code, e.message, e.task_id)
        if e.task_id is None:
            return
        for ref in [r for r in self._pending_declines if r.task_id == e.task_id]:
            del self._pending_declines[ref]
        local = self._tasks.get(e.task_id)
        if local is None:
            self._check_drained()
            return
        transient = e.code in TRANSIENT_ERRORS
        if e.code in TASK_GONE_ERRORS or (local.result is not None and not transient):
            log.warning("dropping task %s locally", e.task_id)
            self._drop(e.task_id)
            return
        if not transient or local.result is None:
            return
        # A transient refusal of a result: the missing ack leads to a
        # reconnect and a re-send, MAX_RESULT_REFUSALS times at most.
        local.result_refusals += 1
        if local.result_refusals < MAX_RESULT_REFUSALS:
            return
        if local.result["type"] == "complete":
            log.warning("the hub keeps refusing the result of task %s: failing the attempt instead", e.task_id)
            local.result = protocol.fail(
                local.ref,
                f"the hub refused this attempt's result {MAX_RESULT_REFUSALS} times: {e.code}: {e.message}",
                retryable=True,
            )
            local.result_refusals = 0
        else:
            log.warning("the hub keeps refusing the failure of task %s: dropping it locally", e.task_id)
            self._drop(e.task_id)

    def _owns(self, ref: TaskRef) -> bool:
        local = self._tasks.get(ref.task_id)
        return local is not None and local.ref.attempt == ref.attempt

    def _drop(self, task_id: str) -> None:
        """Forgets a task: its handler is cancelled and its results never sent."""
        local = self._tasks.pop(task_id, None)
        if local is None:
            return
        local.dropped = True
        if local.handle is not None and not local.handle.done():
            local.handle.cancel()
        self._poke()
