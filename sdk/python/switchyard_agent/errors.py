"""The exceptions the agent's layers raise to each other and to the caller.

Why a module of its own: the handshake (``connection``), the session loop
(``session``) and the public :class:`~switchyard_agent.Agent` all raise or
catch them, so they live below all three and none imports another for them.
"""

from __future__ import annotations


class AgentError(Exception):
    """The agent cannot run: a bad configuration, a refused token (HTTP
    401/403) or a permanent refusal of ``hello`` (see
    :data:`~switchyard_agent.protocol.PERMANENT_HELLO_ERRORS`). Retrying with
    the same settings cannot succeed, so :meth:`Agent.run` raises it."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class _Retry(Exception):
    """A connection attempt failed for now; reconnect with backoff."""
