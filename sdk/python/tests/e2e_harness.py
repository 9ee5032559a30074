"""The processes of the end-to-end tests: a hub, and summarize.py agents.

Why a module of its own: ``test_e2e`` reads as the scenarios only, while
this owns the mechanics every scenario shares and that must be right once:
a private copy of the hub binary, the scrubbed environment, draining each
child's output (the hub logs to stdout, and a full pipe would stall it),
reading the hub's address from its banner and an agent's id from its
``ready`` line, and stopping every process however a test ends.

Each wait here is for a state (a line printed, ``/ready`` answering 200)
with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
SDK = REPO / "sdk" / "python"
EXAMPLE = SDK / "examples" / "summarize.py"
DEADLINE = 30.0  # seconds any awaited state may take
POLL = 0.05  # seconds between two looks at a state

# The hub's timings for these tests (SWITCHYARD_* settings): a lost agent's
# task is given back after 2 s and retried 200 ms later.
HUB_SETTINGS = {
    "SWITCHYARD_HEARTBEAT_INTERVAL": "1s",
    "SWITCHYARD_RECONNECT_GRACE": "2s",
    "SWITCHYARD_RETRY_INITIAL": "200ms",
    "SWITCHYARD_RETRY_MAX": "1s",
    "SWITCHYARD_SHUTDOWN_GRACE": "2s",
    "SWITCHYARD_RATE_LIMIT_PER_SECOND": "0",
    "SWITCHYARD_LOG_FORMAT": "json",
    "SWITCHYARD_LOG_FILTER": "info",
}


def scrubbed_env() -> dict[str, str]:
    """This process's environment without the caller's hub, agent and log
    settings, so that only what a test sets reaches its processes."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWITCHYARD_") and k not in ("DATABASE_URL", "RUST_LOG", "LOG_LEVEL", "SUMMARIZE_DELAY_MS")
    }


try:  # resolved now: the child may not import or load anything after fork
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL when the test process dies,
    so an interrupted run leaves no hub or agent behind."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    preexec = _die_with_parent if _prctl is not None else None
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, text=True, preexec_fn=preexec, **kwargs)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def prepare_binary(work: Path) -> tuple[Path | None, str | None]:
    """A private copy of the hub binary, or why there is none."""
    source = Path(os.environ.get("SWITCHYARD_BIN") or REPO / "target" / "debug" / "switchyard")
    if not source.is_absolute():
        source = REPO / source
    if not source.is_file():
        return None, (
            f"no hub binary at {source}: build it (cargo build -p switchyard --bin switchyard) "
            "or point SWITCHYARD_BIN at one"
        )
    copy = work / "switchyard"
    deadline = time.monotonic() + 60.0
    problem = ""
    while time.monotonic() < deadline:
        # A copy taken while the linker writes the file does not run: take another.
        try:
            shutil.copy2(source, copy)
            probe = subprocess.run([str(copy), "--version"], capture_output=True, text=True, timeout=30)
            if probe.returncode == 0:
                return copy, None
            problem = (probe.stderr or probe.stdout).strip()
        except (OSError, subprocess.SubprocessError) as e:
            problem = str(e)
        time.sleep(1.0)
    return None, f"the hub binary {source} does not run (`--version` failed: {problem})"


class Hub:
    """One ``switchyard serve`` process with its own data directory."""

    def __init__(self, binary: Path, data_dir: Path) -> None:
        self.binary = binary
        self.dir = data_dir
        self.log = data_dir / "hub.log"
        self.env = scrubbed_env()
        self.env.update(HUB_SETTINGS)
        self.env["SWITCHYARD_JWT_SECRET"] = secrets.token_hex(32)
        self.base = ""
        self._listening = threading.Event()
        self._admin = ""
        self.proc = _spawn(
            [
                str(binary), "serve",
                "--data-dir", str(data_dir),
                "--database-url", f"sqlite://{data_dir}/switchyard.db",
                "--listen", "127.0.0.1:0",
            ],
            cwd=data_dir,  # no switchyard.toml of the caller's
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read_output, name="hub-output", daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        """Copies the hub's output to its log (it must be drained: the hub
        logs to stdout) and notes the address from its banner."""
        assert self.proc.stdout is not None
        with open(self.log, "w", encoding="utf-8") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if not self.base and line.startswith("switchyard listening on "):
                    self.base = line.split()[3]
                    self._listening.set()

    def wait_listening(self, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while not self._listening.wait(POLL):
            if self.proc.poll() is not None:
                raise AssertionError(f"the hub exited ({self.proc.returncode}) before it listened:\n{tail(self.log)}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"the hub did not listen within {timeout}s:\n{tail(self.log)}")

    def token(self, role: str, sub: str) -> str:
        out = subprocess.run(
            [str(self.binary), "token", "issue", "--data-dir", str(self.dir)]
            + ["--role", role, "--sub", sub, "--ttl", "1h"],
            cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=60,
        )
        if out.returncode != 0:
            raise AssertionError(f"`switchyard token issue --role {role} --sub {sub}` failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    # ---------------------------------------------- REST

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._admin}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                answer: bytes = res.read()
                return answer
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise AssertionError(f"{method} {path} answered HTTP {e.code}: {detail}") from None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return json.loads(self.request(method, path, body))

    def wait_ready(self, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=5) as res:
                    if res.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            if not self.alive() or time.monotonic() >= deadline:
                raise AssertionError(f"{self.base}/ready never answered 200 (last: {last}):\n{tail(self.log)}")
            time.sleep(POLL)

    def start(self) -> None:
        self.wait_listening()
        self._admin = self.token("admin", "e2e-tests")
        self.wait_ready()


class AgentProcess:
    """``examples/summarize.py`` as a process of its own."""

    def __init__(self, hub: Hub, name: str, work: Path, *, delay_ms: int = 0) -> None:
        self.name = name
        self.log = work / f"agent-{name}.log"
        env = scrubbed_env()
        env["SWITCHYARD_TOKEN"] = hub.token("agent", name)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SDK), os.environ.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr = open(self.log, "w", encoding="utf-8")
        self.proc = _spawn(
            [sys.executable, str(EXAMPLE), "--url", hub.base, "--delay-ms", str(delay_ms), "--log-level", "INFO"],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, name=f"agent-{name}-stdout", daemon=True)
        self._reader.start()
        self.agent_id = ""

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_ready(self, timeout: float = DEADLINE) -> str:
        """Waits for ``ready agent_id=<uuid> name=<name>`` and returns the id."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, min(POLL * 4, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"agent {self.name} printed no `ready` within {timeout}s:\n{tail(self.log)}")
                continue
            if line is None:
                self.proc.wait(5)
                raise AssertionError(
                    f"agent {self.name} exited ({self.proc.returncode}) before `ready`:\n{tail(self.log)}"
                )
            if line.startswith("ready agent_id="):
                fields = dict(part.split("=", 1) for part in line.split()[1:])
                self.agent_id = fields["agent_id"]
                return self.agent_id

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
