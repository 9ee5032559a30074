"""switchyard_agent: write Switchyard agents in Python.

An agent holds one authenticated WebSocket session with the Switchyard hub,
declares its capabilities, and gets tasks pushed to it. This package does the
protocol (``docs/protocol.md``): ``hello``/``welcome``, heartbeats,
``accept``/``decline``, items and progress, ``complete``/``fail`` and waiting
for their ``ack``, cancellation, draining on SIGTERM, and reconnecting with
exponential backoff while resuming running tasks. You write handlers::

    agent = Agent("ws://127.0.0.1:8000", token, "summarizer-1")

    @agent.capability("text.summarize", max_concurrency=4)
    async def summarize(ctx: TaskContext, input: dict) -> dict:
        await ctx.item({"text": "..."})
        return {"summary": "..."}

    asyncio.run(agent.run_until_signal())

It mirrors the Rust SDK (``agent-sdk/``, crate ``switchyard-agent``).
"""

from .agent import Agent, AgentError, DeclineFilter, Handler, __version__
from .context import Fail, PermanentError, TaskContext
from .protocol import PROTOCOL_VERSION, Capability, Pricing, Task, TaskRef, Usage, Welcome

__all__ = [
    "Agent",
    "AgentError",
    "Capability",
    "DeclineFilter",
    "Fail",
    "Handler",
    "PROTOCOL_VERSION",
    "PermanentError",
    "Pricing",
    "Task",
    "TaskContext",
    "TaskRef",
    "Usage",
    "Welcome",
    "__version__",
]
