"""Run :mod:`worker` in a child process, follow its progress, and kill it on Cancel.

Pure Python (subprocess + one reader thread): the Slicer widget polls :meth:`poll` from a
``QTimer``, and tests drive the same class with a plain loop. Rules that keep Slicer usable:

* :meth:`poll` never blocks: it never joins the reader thread while the pipe is open. Slicer's
  ``PythonSlicer`` is a CTKAppLauncher wrapper that starts the real Python as a child, so the
  process we see can exit while a grandchild still holds the pipe; after a short grace the
  whole tree is killed and the job ends.
* Cancel kills the whole process tree: on POSIX the worker gets its own session and the group is
  killed; on Windows ``taskkill /T /F`` (the launcher starts python.exe with no job object, so
  ``Popen.kill`` would end only the launcher). While the launcher lives, the tree under it is
  recorded (psutil ``children(recursive=True)``, where psutil imports), so a child that outlives
  its launcher (unreachable by ``taskkill /T`` on a dead PID) is still killed by its own PID.
* Whatever happens, a job ends: a launcher gone while its pipe stays open is given
  :data:`ORPHAN_GRACE_S`, then the tree is killed once, and after :data:`ORPHAN_GIVE_UP_S` more
  the job is given up and reported (naming the PIDs that could not be stopped).
* On Windows the console window is hidden (as ``slicer.util.launchConsoleProcess`` does).
* Output is decoded as UTF-8 with replacement (``PYTHONIOENCODING=utf-8`` in the child), so a
  non-ASCII path or message can never stop the reader.
* A worker that dies without its ``error:`` line is reported with its exit status and the tail
  of its output.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .worker import DONE_PREFIX, ERROR_PREFIX, EXCEPTION_PREFIX, RunRequest, parse_progress

try:  # not part of every Slicer's Python: without it an orphan is given up after a bounded time
    import psutil
except ImportError:  # pragma: no cover  (psutil is installed where the tests run)
    psutil = None

logger = logging.getLogger(__name__)

WORKER = Path(__file__).resolve().parent / "worker.py"
# How long a finished launcher may leave its pipe held open by a child before the tree is killed.
ORPHAN_GRACE_S = 2.0
# How long after that kill the job waits for the pipe to close before it is given up.
ORPHAN_GIVE_UP_S = 3.0
# How often the process tree under a running launcher is recorded.
TREE_RECORD_INTERVAL_S = 0.5


def python_executable() -> str:
    """Slicer's launcher-wrapped Python where it exists, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def popen_options(os_name: str = os.name) -> dict:
    """Process-creation options: own process group/session, and no console window on Windows."""
    if os_name == "posix":
        return {"start_new_session": True}
    startupinfo = subprocess.STARTUPINFO()  # type: ignore[attr-defined]  (Windows only)
    startupinfo.dwFlags |= subprocess.STARTF_USESHOWWINDOW  # type: ignore[attr-defined]
    startupinfo.wShowWindow = subprocess.SW_HIDE  # type: ignore[attr-defined]
    flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
    return {"startupinfo": startupinfo, "creationflags": flags}


def kill_tree_command(pid: int) -> list[str]:
    """Windows: end a process and every process it started."""
    return ["taskkill", "/T", "/F", "/PID", str(pid)]


def child_environment() -> dict:
    env = dict(os.environ)
    # The child sees exactly the packages this process sees (e.g. pyradiomics that the
    # SlicerRadiomics extension puts on Slicer's sys.path at run time).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _kill_process_tree(process: subprocess.Popen) -> None:
    """Kill a process started with :func:`popen_options` and everything it started."""
    if os.name == "posix":
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    else:
        subprocess.run(kill_tree_command(process.pid), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, **popen_options())
        try:
            process.kill()
        except OSError:
            pass


class ProcessTree:
    """The processes under one started process, recorded while it lives, and the bounded end of
    a job whose process exited while its output pipe is still held (an orphaned child)."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.known: set[int] = set()
        self._recorded_at = -1.0e9
        self.exited_at: float | None = None
        self.killed_at: float | None = None
        self.given_up = False

    def record(self) -> None:
        """Note the descendants of the (running) process; cheap enough for every poll."""
        now = time.monotonic()
        if psutil is None or now - self._recorded_at < TREE_RECORD_INTERVAL_S:
            return
        self._recorded_at = now
        try:
            self.known |= {child.pid for child in psutil.Process(self.process.pid).children(recursive=True)}
        except psutil.Error:
            pass

    def kill(self) -> None:
        """The whole tree: the group (POSIX) or ``taskkill /T`` (Windows), and every recorded PID."""
        self.record()
        _kill_process_tree(self.process)
        for pid in sorted(self.known):
            try:
                psutil.Process(pid).kill()
            except (psutil.Error, AttributeError):
                pass

    def survivors(self) -> list[int]:
        if psutil is None:
            return sorted(self.known)
        return [pid for pid in sorted(self.known) if psutil.pid_exists(pid)]

    def orphan_may_end(self) -> bool:
        """Called while the process has exited but its pipe is still open: after the grace the
        tree is killed once; True when the job may end (the pipe has had its time after the kill:
        :attr:`given_up`)."""
        now = time.monotonic()
        if self.exited_at is None:
            self.exited_at = now
        if now - self.exited_at < ORPHAN_GRACE_S:
            return False
        if self.killed_at is None:
            self.killed_at = now
            self.kill()
            return False
        if now - self.killed_at < ORPHAN_GIVE_UP_S:
            return False
        self.given_up = True
        return True


def _record_line(job, line: str) -> None:
    """One line of the engine's output: a progress line moves ``job.fraction``/``job.message``,
    anything else goes to ``job.log`` (its error line and crash output)."""
    parsed = parse_progress(line)
    with job._lock:
        if parsed is not None:
            job.fraction, job.message = parsed
        elif line and not line.startswith(DONE_PREFIX):
            job.log.append(line)


def _wait(job, timeout: float | None) -> int:
    """Poll ``job`` until it ends (console and tests only; the GUI polls on its timer). Raises
    ``TimeoutError`` with the worker's last message when ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        code = job.poll()
        if code is not None:
            return code
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the engine did not finish within {timeout:g} s (last step: {job.message})")
        time.sleep(0.05)


def _error_line(log: list[str]) -> str | None:
    """The worker's last ``error: ...`` line (its own one-line message), or its last
    ``exception: ...`` line (an unexpected Python exception), if it printed one."""
    for prefix in (ERROR_PREFIX, EXCEPTION_PREFIX):
        lines = [line for line in log if line.startswith(prefix)]
        if lines:
            return lines[-1][len(prefix):]
    return None


def traceback_text(log: list[str]) -> str:
    """The worker's last Python traceback in its output ("" when it printed none)."""
    starts = [i for i, line in enumerate(log) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return ""
    tail = log[starts[-1]:]
    ends = [i for i, line in enumerate(tail) if line.startswith(EXCEPTION_PREFIX)]
    return "\n".join(tail[:ends[0]] if ends else tail)


def _failure_message(log: list[str], how: str, last_step: str) -> str:
    """What the user reads when the engine ended badly: its error or exception line, else how
    it ended, its last step and its last output (a crash in C code leaves no Python message)."""
    line = _error_line(log)
    if line is not None:
        return line
    return (f"the engine process {how} (out of memory, or a crash in a compiled library). "
            f"Its last step was: {last_step}. Its last output:\n" + "\n".join(log[-15:]))


def _orphan_message(tree: ProcessTree, last_step: str) -> str:
    text = ("the engine process's launcher exited while the engine still ran (it was stopped). "
            f"Its last step was: {last_step}.")
    survivors = tree.survivors() if tree.given_up else []
    if survivors:
        text += (" These engine processes could not be stopped: "
                 + ", ".join(f"PID {pid}" for pid in survivors)
                 + "; end them in the Task Manager (Windows) or with kill.")
    return text


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                            env=child_environment(), **popen_options())


class BackgroundAnalysis:
    """One worker process for one :class:`~DeepRadScoreSlicerLib.worker.RunRequest`:
    ``fraction``/``message`` follow its progress lines, ``log`` the rest.

    The request goes to the worker's stdin as its one JSON line, and stdin is closed, so the
    worker exits with the run's status.

    :param command_prefix: the interpreter (and launcher arguments) to start :mod:`worker` with;
        default ``[PythonSlicer]`` or this Python. Tests put a launcher script here.
    """

    def __init__(self, request: RunRequest, python: str | None = None,
                 command_prefix: list[str] | None = None):
        self.request = request
        self.output_dir = Path(request.output)
        prefix = list(command_prefix) if command_prefix else [python or python_executable()]
        self.command = [*prefix, str(WORKER)]
        self.fraction = 0.0
        self.message = "starting the engine"
        self.log: list[str] = []
        self.cancelled = False
        self.context: dict = {}
        self._lock = threading.Lock()
        self.orphaned = False
        self._returncode: int | None = None
        self.process = _start(self.command)
        self.tree = ProcessTree(self.process)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.process.stdin.write(request.to_line() + "\n")
            self.process.stdin.close()
        except OSError:
            pass  # the process is already gone: poll() reports how it ended

    def _read(self) -> None:
        try:
            for raw in self.process.stdout:
                _record_line(self, raw.rstrip("\n"))
        except (OSError, ValueError):
            pass  # the pipe was closed under us by a kill
        finally:
            try:
                self.process.stdout.close()
            except OSError:
                pass

    def poll(self):
        """None while running; the exit status once the process and its output are finished.

        Never blocks, and always ends: a launcher that has exited while its child still holds
        the output pipe is given :data:`ORPHAN_GRACE_S`, then the tree is killed, and after
        :data:`ORPHAN_GIVE_UP_S` the job is given up.
        """
        if self._returncode is not None:
            return self._returncode
        code = self.process.poll()
        if code is None:
            self.tree.record()
            return None
        if self._reader.is_alive() and not self.cancelled:
            # (After our own Cancel the whole tree is dead: the reader only has the EOF left to
            # read, so the job is over; without this a poll right after cancel() raced the reader.)
            # CTKAppLauncher waits for its child, so this is abnormal: stop the tree, fail the job.
            if not self.tree.orphan_may_end() and self._reader.is_alive():
                return None
            self.orphaned = True
            code = code or 1
        elif self.tree.killed_at is not None:
            self.orphaned = True
            code = code or 1
        self._returncode = code
        return code

    def wait(self, timeout: float | None = None) -> int:
        """Block until the job ends (console and tests only; the GUI polls). Raises
        ``TimeoutError`` with the worker's last message when ``timeout`` passes."""
        return _wait(self, timeout)

    def cancel(self) -> None:
        """Kill the worker and everything it started (a launcher's child python included)."""
        self.cancelled = True
        self.tree.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("the engine process %d did not end after kill", self.process.pid)

    def error_message(self) -> str:
        """The worker's ``error:``/``exception:`` line, or what is known about a crash."""
        with self._lock:
            log = list(self.log)
        code = self._returncode if self._returncode is not None else self.process.returncode
        if self.orphaned and not _error_line(log):
            return _orphan_message(self.tree, self.message)
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"stopped unexpectedly with exit status {code}"
        return _failure_message(log, how, self.message)

    def traceback(self) -> str:
        with self._lock:
            return traceback_text(list(self.log))


class EngineProcess:
    """One engine (``worker.py``) kept alive across Runs, with its bundle loaded.

    The Logic keeps one per bundle path and closes it when the bundle changes, when it has been
    idle for a while, on "Release engine", or when Slicer exits (closing its stdin ends it; it also
    ends by itself when Slicer dies, as its stdin closes). Cancel kills it, and its whole tree,
    like a one-shot worker: the next Run starts a new one.
    """

    def __init__(self, bundle_path: str = "", device: str = "auto", command_prefix: list[str] | None = None):
        self.bundle_path = str(bundle_path or "")
        self.device = device
        prefix = list(command_prefix) if command_prefix else [python_executable()]
        self.command = [*prefix, str(WORKER)]
        self.process = _start(self.command)
        self.tree = ProcessTree(self.process)
        self.job: EngineJob | None = None
        self.runs = 0
        self.idle_since = time.monotonic()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return self.process.poll() is None and self._reader.is_alive()

    def busy(self) -> bool:
        with self._lock:
            return self.job is not None

    def serves(self, bundle_path, device: str, command_prefix) -> bool:
        prefix = list(command_prefix) if command_prefix else [python_executable()]
        return (self.alive() and not self.busy() and self.bundle_path == str(bundle_path or "")
                and self.device == device and self.command[:-1] == prefix)

    def _read(self) -> None:
        try:
            for raw in self.process.stdout:
                line = raw.rstrip("\n")
                with self._lock:
                    job = self.job
                if job is None:
                    logger.debug("engine: %s", line)
                elif line.startswith(DONE_PREFIX):
                    with self._lock:
                        self.job = None
                    self.idle_since = time.monotonic()
                    fields = line[len(DONE_PREFIX):].split()
                    loads = [f.split("=", 1)[1] for f in fields[1:] if f.startswith("bundle-loads=")]
                    job.bundle_loads = int(loads[0]) if loads else None
                    job._done(int(fields[0]))
                else:
                    job._line(line)
        except (OSError, ValueError):
            pass
        finally:
            try:
                self.process.stdout.close()
            except OSError:
                pass

    def submit(self, job: "EngineJob", request: RunRequest) -> None:
        with self._lock:
            if self.job is not None:
                raise RuntimeError("the engine is busy with another run")
            self.job = job
        self.runs += 1
        try:
            self.process.stdin.write(request.to_line() + "\n")
            self.process.stdin.flush()
        except OSError as error:
            with self._lock:
                self.job = None
            raise RuntimeError(f"the engine process ended before the run started ({error})") from None

    def kill(self) -> None:
        self.tree.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("the engine process %d did not end after kill", self.process.pid)

    def close(self) -> None:
        """End the engine: close its stdin (it exits at once when idle), kill it if it lingers."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class EngineJob:
    """One run on an :class:`EngineProcess`; the same handle as :class:`BackgroundAnalysis`.

    The request's ``bundle`` and ``device`` are the engine's own."""

    def __init__(self, engine: EngineProcess, request: RunRequest):
        self.engine = engine
        self.process = engine.process
        self.request = RunRequest(**{**request.__dict__, "bundle": engine.bundle_path, "device": engine.device})
        self.output_dir = Path(request.output)
        self.fraction = 0.0
        self.message = "starting the engine" if engine.runs == 0 else "engine ready"
        self.log: list[str] = []
        self.cancelled = False
        self.orphaned = False
        self.context: dict = {}
        self.bundle_loads: int | None = None
        self._lock = threading.Lock()
        self._returncode: int | None = None
        engine.submit(self, self.request)

    def _line(self, line: str) -> None:
        _record_line(self, line)

    def _done(self, code: int) -> None:
        with self._lock:
            self._returncode = code

    def poll(self):
        """None while running; the run's status once it is answered (or the engine died).
        Never blocks, and always ends (as :meth:`BackgroundAnalysis.poll`)."""
        with self._lock:
            if self._returncode is not None:
                return self._returncode
        engine = self.engine
        code = engine.process.poll()
        if code is None:
            engine.tree.record()
            return None
        if engine._reader.is_alive() and not self.cancelled:
            # A launcher gone while its child holds the pipe: as in BackgroundAnalysis.poll.
            if not engine.tree.orphan_may_end() and engine._reader.is_alive():
                return None
            self.orphaned = True
        with self._lock:
            if self._returncode is None:
                self._returncode = code if code != 0 else 1
            return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        return _wait(self, timeout)

    def cancel(self) -> None:
        """Kill the engine and its tree (the next Run starts a new one)."""
        self.cancelled = True
        if self.poll() is None:
            self.engine.kill()
            self._done(self.engine.process.returncode if self.engine.process.returncode is not None else -9)

    def error_message(self) -> str:
        with self._lock:
            log = list(self.log)
        if self.orphaned and not _error_line(log):
            return _orphan_message(self.engine.tree, self.message)
        code = self.engine.process.poll()
        if code is None:
            how = f"failed with status {self._returncode}"
        elif code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"stopped unexpectedly with exit status {code}"
        return _failure_message(log, how, self.message)

    def traceback(self) -> str:
        with self._lock:
            return traceback_text(list(self.log))
