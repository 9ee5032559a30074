#!/usr/bin/env python3
"""Reference Python agent: ``text.summarize``, deterministic, no external services.

Input, as the hub pushes it (docs/protocol.md, "task"):

* stage 0: ``{job_id, prompt, context, document}`` - the job's document
  (``document.content_base64``, read as UTF-8) is summarised; a job without a
  document has its prompt summarised instead;
* later stages: ``{job_id, prompt, context, item: {id, stage, data}}`` - the item's
  ``data.text`` (or the whole ``data`` as JSON) is summarised, so the agent
  can also follow e.g. ``requirements.extract`` in a pipeline.

The summary is the first sentence (at most 200 characters) plus counts. The
output is ``{"summary", "words", "sentences", "source"}``; one item
``{"text": summary, "words": N}`` is emitted, so the agent can feed a next
stage (e.g. ``requirements.validate``).

Run::

    switchyard token issue --role agent --sub summarizer-1     # prints a token
    SWITCHYARD_URL=ws://127.0.0.1:8000 SWITCHYARD_TOKEN=... python examples/summarize.py

Environment / flags: ``SWITCHYARD_URL`` / ``--url`` (default
``ws://127.0.0.1:8000/v1/agents/connect``), ``SWITCHYARD_FALLBACK_URLS``
(comma-separated) / ``--fallback-url`` (repeatable; other nodes of the hub's
cluster, tried when the current one is unreachable), ``SWITCHYARD_TOKEN`` / ``--token``,
``SWITCHYARD_AGENT_NAME`` / ``--name`` (default: the token's ``sub``),
``SUMMARIZE_DELAY_MS`` / ``--delay-ms`` (work time per task, for tests; progress
is reported every 500 ms meanwhile), ``--max-concurrency`` (default 4),
``--capability`` (default ``text.summarize``), ``--log-level``.

Prints ``ready agent_id=<uuid> name=<name>`` on stdout (flushed) every time
the hub welcomes it, logs to stderr, drains on SIGTERM/SIGINT and exits 0
(1 if the hub refuses the token or hello, 2 on a usage error).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import os
import re
import sys
from typing import Any

from switchyard_agent import Agent, AgentError, PermanentError, TaskContext, Welcome

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def summarize_text(text: str) -> dict[str, Any]:
    """First sentence (Markdown headings and list markers stripped) + counts."""
    lines = [re.sub(r"^\s*(#+|[-*+]|\d+\.)\s+", "", line).strip() for line in text.splitlines()]
    # Headings are titles, not sentences: skip lines without sentence punctuation
    # when there is anything better.
    prose = " ".join(l for l in lines if l and re.search(r"[.!?]$", l)) or " ".join(l for l in lines if l)
    sentences = [s for s in SENTENCE_END.split(prose) if s.strip()]
    first = sentences[0].strip() if sentences else ""
    if len(first) > 200:
        first = first[:199].rstrip() + "…"
    return {
        "summary": first,
        "words": len(text.split()),
        "sentences": len([s for s in SENTENCE_END.split(" ".join(l for l in lines if l)) if s.strip()]),
    }


def text_of(task_input: Any) -> tuple[str, str]:
    """The text to summarise and where it came from."""
    if not isinstance(task_input, dict):
        raise PermanentError("the task input is not a JSON object")
    document = task_input.get("document")
    if isinstance(document, dict):
        raw = "".join(str(document.get("content_base64", "")).split())
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as e:
            raise PermanentError(f"document.content_base64 is not valid base64: {e}") from None
        return data.decode("utf-8", "replace"), str(document.get("file_name") or "document")
    item = task_input.get("item")
    if isinstance(item, dict):
        data = item.get("data")
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            return data["text"], f"item {item.get('id')}"
        return json.dumps(data, ensure_ascii=False), f"item {item.get('id')}"
    prompt = task_input.get("prompt")
    if isinstance(prompt, str):
        return prompt, "prompt"
    raise PermanentError("nothing to summarise: no document, item or prompt in the input")


def token_sub(token: str) -> str | None:
    """The ``sub`` claim of a JWT, read without verifying (the hub verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        sub = claims.get("sub")
        return sub if isinstance(sub, str) else None
    except (IndexError, ValueError):
        return None


def build_agent(args: argparse.Namespace) -> Agent:
    delay = max(args.delay_ms, 0) / 1000.0

    def ready(welcome: Welcome) -> None:
        print(f"ready agent_id={welcome.agent_id} name={args.name}", flush=True)

    agent = Agent(
        args.url,
        args.token,
        args.name,
        labels={"lang": "python"},
        on_welcome=ready,
        fallback_urls=args.fallback_urls,
    )

    @agent.capability(
        args.capability,
        version="1",
        max_concurrency=args.max_concurrency,
        input_schema={"type": "object"},
        output_schema={
            "type": "object",
            "properties": {"summary": {"type": "string"}, "words": {"type": "integer", "minimum": 0}},
            "required": ["summary", "words"],
        },
    )
    async def summarize(ctx: TaskContext, task_input: Any) -> dict[str, Any]:
        text, source = text_of(task_input)
        log = logging.getLogger("summarize")
        log.info("task %s attempt %d: summarising %s (%d chars)", ctx.task_id, ctx.attempt, source, len(text))
        # Simulated work, reporting progress (which also renews the lease).
        waited = 0.0
        while waited < delay:
            step = min(0.5, delay - waited)
            await asyncio.sleep(step)
            waited += step
            await ctx.progress(100.0 * waited / delay, f"{int(waited * 1000)} of {int(delay * 1000)} ms")
        result = summarize_text(text)
        await ctx.item({"text": result["summary"], "words": result["words"]})
        ctx.report_usage(requests=1)
        return {**result, "source": source}

    return agent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Switchyard reference agent: text.summarize")
    p.add_argument("--url", default=os.environ.get("SWITCHYARD_URL", "ws://127.0.0.1:8000/v1/agents/connect"))
    p.add_argument(
        "--fallback-url",
        dest="fallback_urls",
        action="append",
        metavar="URL",
        help="another node of the hub's cluster (repeatable; default: $SWITCHYARD_FALLBACK_URLS, comma-separated)",
    )
    p.add_argument("--token", default=os.environ.get("SWITCHYARD_TOKEN"))
    p.add_argument("--name", default=os.environ.get("SWITCHYARD_AGENT_NAME"))
    p.add_argument("--capability", default="text.summarize")
    p.add_argument("--max-concurrency", type=int, default=4)
    p.add_argument("--delay-ms", type=int, default=int(os.environ.get("SUMMARIZE_DELAY_MS", "0")))
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    if args.fallback_urls is None:
        args.fallback_urls = os.environ.get("SWITCHYARD_FALLBACK_URLS", "").split(",")
    args.fallback_urls = [u.strip() for u in args.fallback_urls if u.strip()]
    if not args.token:
        p.error("no token: set SWITCHYARD_TOKEN (switchyard token issue --role agent --sub NAME)")
    args.name = args.name or token_sub(args.token)
    if not args.name:
        p.error("no agent name: pass --name or use a token with a `sub` claim")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        agent = build_agent(args)
        asyncio.run(agent.run_until_signal())
    except AgentError as e:
        logging.getLogger("summarize").error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
