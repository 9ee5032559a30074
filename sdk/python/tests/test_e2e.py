"""End-to-end tests: the Python agent library against the real hub.

Every test starts its own ``switchyard serve`` (SQLite in a fresh temp data
directory, listening on 127.0.0.1:0, the bound address read from the banner
it prints) with short timings, issues tokens with ``switchyard token issue``,
runs ``examples/summarize.py`` as agent processes (with this interpreter,
``sys.executable``, and this checkout's ``switchyard_agent`` first on
``PYTHONPATH``) and talks REST with urllib.

Nothing waits a fixed time: the tests wait for states (the banner, the
agent's ``ready`` line, a job's status, a task running on an agent), polling
with a deadline, and a timeout fails with the last state seen and the tails
of the hub's and agents' logs.

The hub binary is ``$SWITCHYARD_BIN`` (default ``<repo>/target/debug/switchyard``;
build it with ``cargo build -p switchyard --bin switchyard``). Without it the
tests FAIL: they are part of the suite, not optional. It is copied into a temp
directory first, so a rebuild during the run does not matter. The caller's
``SWITCHYARD_*``, ``DATABASE_URL`` and ``RUST_LOG`` never reach the hub or the
agents.

Run: ``python -m unittest discover -s sdk/python/tests -v`` (the venv needs
``websockets``: ``pip install ./sdk/python``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any, Callable, TypeVar

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # run as `python -m unittest path/to/test_e2e.py`
    sys.path.insert(0, HERE)
from e2e_harness import DEADLINE, POLL, AgentProcess, Hub, prepare_binary, tail  # noqa: E402

# The document of test (a), and what summarize.py computes from it.
DOCUMENT = (
    b"# Quarterly report\n"
    b"\n"
    b"Revenue grew by ten percent this quarter. Costs stayed flat!\n"
    b"- Hiring continues.\n"
)
DOCUMENT_SUMMARY = "Revenue grew by ten percent this quarter."
DOCUMENT_WORDS = 16

T = TypeVar("T")


class EndToEnd(unittest.TestCase):
    binary: Path | None = None
    binary_problem: str | None = None
    _bin_dir: tempfile.TemporaryDirectory[str]

    @classmethod
    def setUpClass(cls) -> None:
        cls._bin_dir = tempfile.TemporaryDirectory(prefix="sy-e2e-bin.")
        cls.binary, cls.binary_problem = prepare_binary(Path(cls._bin_dir.name))

    @classmethod
    def tearDownClass(cls) -> None:
        cls._bin_dir.cleanup()

    def setUp(self) -> None:
        if self.binary is None:
            self.fail(self.binary_problem)  # a failure, not a skip: the suite needs the hub
        self.work = Path(tempfile.mkdtemp(prefix="sy-e2e."))
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)
        (self.work / "data").mkdir()
        self.agents: list[AgentProcess] = []
        self.hub = Hub(self.binary, self.work / "data")
        self.addCleanup(self.hub.stop)  # cleanups run last-in first-out: agents first
        self.addCleanup(self._stop_agents)
        self.hub.start()

    def _stop_agents(self) -> None:
        for agent in self.agents:
            agent.stop()

    # ---------------------------------------------- helpers

    def start_agent(self, name: str, *, delay_ms: int = 0) -> AgentProcess:
        agent = AgentProcess(self.hub, name, self.work, delay_ms=delay_ms)
        self.agents.append(agent)
        agent.wait_ready()
        return agent

    def logs(self) -> str:
        parts = [f"--- hub log (tail) ---\n{tail(self.hub.log)}"]
        parts += [f"--- agent {a.name} log (tail) ---\n{tail(a.log)}" for a in self.agents]
        return "\n".join(parts)

    def wait_for(self, what: str, probe: Callable[[], T], done: Callable[[T], bool], timeout: float = DEADLINE) -> T:
        """Polls ``probe`` until ``done`` holds; fails with the last value seen."""
        deadline = time.monotonic() + timeout
        while True:
            last = probe()
            if done(last):
                return last
            if not self.hub.alive():
                self.fail(f"the hub exited while waiting for {what}; last seen: {last!r}\n{self.logs()}")
            if time.monotonic() >= deadline:
                self.fail(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}\n{self.logs()}")
            time.sleep(POLL)

    def submit(self, prompt: str, document: bytes | None = None) -> str:
        body: dict[str, Any] = {"prompt": prompt, "pipeline": ["text.summarize"]}
        if document is not None:
            body["document"] = {
                "file_name": "report.md",
                "content_type": "text/markdown",
                "content_base64": base64.b64encode(document).decode(),
            }
        return str(self.hub.api("POST", "/v1/jobs", body)["id"])

    def wait_finished(self, job_id: str) -> Any:
        """Waits until the job is finished and asserts it completed."""
        job = self.wait_for(
            f"job {job_id} to finish",
            lambda: self.hub.api("GET", f"/v1/jobs/{job_id}"),
            lambda j: j["status"] in ("completed", "failed", "cancelled"),
        )
        self.assertEqual(
            job["status"], "completed", f"job {job_id} ended {job['status']}: {job.get('status_reason')}\n{self.logs()}"
        )
        return job

    def wait_running_on(self, job_id: str, agent: AgentProcess) -> None:
        """Waits until the job's only task runs (is accepted) on ``agent``, the
        only agent connected."""

        def probe() -> tuple[int, int]:
            progress = self.hub.api("GET", f"/v1/jobs/{job_id}/progress")
            view = self.hub.api("GET", f"/v1/agents/{agent.agent_id}")
            return progress["tasks"]["running"], view["in_flight"]

        self.wait_for(
            f"job {job_id}'s task to run on agent {agent.name} (running tasks, agent's in_flight)",
            probe,
            lambda seen: seen == (1, 1),
        )

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's events (its SSE stream ends after the terminal event)."""
        raw = self.hub.request("GET", f"/v1/jobs/{job_id}/events", timeout=20.0).decode()
        return [json.loads(line[len("data:"):]) for line in raw.splitlines() if line.startswith("data:")]

    def succeeded(self, job_id: str) -> Any:
        """The payload of the job's one `task.succeeded` event."""
        done = [e["payload"] for e in self.events(job_id) if e["type"] == "task.succeeded"]
        self.assertEqual(len(done), 1, f"task.succeeded events: {done}")
        return done[0]

    def wait_exit(self, agent: AgentProcess, timeout: float = DEADLINE) -> int:
        try:
            return agent.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"agent {agent.name} did not exit within {timeout}s\n{self.logs()}")

    # ---------------------------------------------- the tests

    def test_a_job_runs_end_to_end_through_summarize(self) -> None:
        agent = self.start_agent("py-a")
        job_id = self.submit("Summarise the report", DOCUMENT)

        job = self.wait_finished(job_id)
        self.assertEqual(job["document"]["size"], len(DOCUMENT))
        self.assertEqual(job["document"]["sha256"], hashlib.sha256(DOCUMENT).hexdigest())
        self.assertEqual(job["items"]["total"], 1)
        self.assertEqual(job["items"]["integrated"], 1)

        items = self.hub.api("GET", f"/v1/jobs/{job_id}/items")["items"]
        self.assertEqual(len(items), 1, items)
        self.assertEqual(items[0]["stage"], 0)
        self.assertEqual(items[0]["status"], "integrated")
        self.assertEqual(items[0]["data"], {"text": DOCUMENT_SUMMARY, "words": DOCUMENT_WORDS})

        report = self.hub.api("GET", f"/v1/jobs/{job_id}/report")
        self.assertEqual(report["summary"]["status"], "completed")
        self.assertEqual(report["stages"][0]["capability"], "text.summarize")
        self.assertEqual(report["stages"][0]["tasks"]["succeeded"], 1)
        self.assertEqual(report["usage"]["total"]["requests"], 1)  # ctx.report_usage(requests=1)
        self.assertEqual([(u["key"], u["agent_id"]) for u in report["usage"]["by_agent"]], [("py-a", agent.agent_id)])

        done = self.succeeded(job_id)
        self.assertEqual((done["agent_id"], done["attempt"]), (agent.agent_id, 1))

    def test_b_task_of_a_killed_agent_completes_on_another(self) -> None:
        a = self.start_agent("py-a", delay_ms=120_000)  # would run for two minutes
        job_id = self.submit("Summarise this. It is short.")
        self.wait_running_on(job_id, a)

        b = self.start_agent("py-b")
        a.proc.kill()  # SIGKILL: no drain, no goodbye
        a.proc.wait(DEADLINE)

        self.wait_finished(job_id)
        done = self.succeeded(job_id)
        self.assertEqual(done["agent_id"], b.agent_id, f"completed by {done['agent_id']}, not py-b ({b.agent_id})")
        self.assertGreaterEqual(done["attempt"], 2)
        started = [
            (e["payload"]["agent_id"], e["payload"]["attempt"]) for e in self.events(job_id) if e["type"] == "task.started"
        ]
        self.assertEqual(started[0], (a.agent_id, 1), started)
        report = self.hub.api("GET", f"/v1/jobs/{job_id}/report")
        self.assertEqual([u["key"] for u in report["usage"]["by_agent"]], ["py-b"])
        items = self.hub.api("GET", f"/v1/jobs/{job_id}/items")["items"]
        self.assertEqual([i["data"] for i in items], [{"text": "Summarise this.", "words": 5}])

    def test_c_sigterm_drains_the_running_task_then_exits_0(self) -> None:
        a = self.start_agent("py-a", delay_ms=4_000)
        job_id = self.submit("Summarise this. It is short.")
        self.wait_running_on(job_id, a)

        a.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(a)
        self.assertEqual(code, 0, f"exit status after SIGTERM\n{self.logs()}")
        # The agent exits only once its result is acked, that is durable:
        # the job is completed by now, no waiting.
        job = self.hub.api("GET", f"/v1/jobs/{job_id}")
        self.assertEqual(job["status"], "completed", f"job after the agent exited: {job}\n{self.logs()}")
        done = self.succeeded(job_id)
        self.assertEqual((done["agent_id"], done["attempt"]), (a.agent_id, 1))
        log = a.log.read_text()
        self.assertIn("SIGTERM received: draining", log)
        self.assertIn("draining (1 running)", log)  # the signal came mid-task


if __name__ == "__main__":
    unittest.main()
