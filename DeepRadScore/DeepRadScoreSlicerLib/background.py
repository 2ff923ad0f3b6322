"""Run :mod:`worker` in a child process, follow its progress, and kill it on Cancel.

Pure Python (subprocess + one reader thread): the Slicer widget polls :meth:`poll` from a
``QTimer``, and tests drive the same class with a plain loop. Rules that keep Slicer usable:

* :meth:`poll` never blocks: it never joins the reader thread while the pipe is open. Slicer's
  ``PythonSlicer`` is a CTKAppLauncher wrapper that starts the real Python as a child, so the
  process we see can exit while a grandchild still holds the pipe; after a short grace the
  whole tree is killed and the job ends.
* Cancel kills the whole process tree: on POSIX the worker gets its own session and the group is
  killed; on Windows ``taskkill /T /F`` (the launcher starts python.exe with no job object, so
  ``Popen.kill`` would end only the launcher).
* On Windows the console window is hidden (as ``slicer.util.launchConsoleProcess`` does).
* Output is decoded as UTF-8 with replacement (``PYTHONIOENCODING=utf-8`` in the child), so a
  non-ASCII path or message can never stop the reader.
* A worker that dies without its ``error:`` line is reported with its exit status and the tail
  of its output.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .worker import DONE_PREFIX, parse_progress

logger = logging.getLogger(__name__)

WORKER = Path(__file__).resolve().parent / "worker.py"
# How long a finished launcher may leave its pipe held open by a child before the tree is killed.
ORPHAN_GRACE_S = 2.0


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



def _record_line(job, line: str) -> None:
    """One line of the engine's output: a progress line moves ``job.fraction``/``job.message``,
    anything else goes to ``job.log`` (its error line and crash output)."""
    parsed = parse_progress(line)
    with job._lock:
        if parsed is not None:
            job.fraction, job.message = parsed
        elif line:
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
    """The worker's last ``error: ...`` line (its own one-line message), if it printed one."""
    errors = [line for line in log if line.startswith("error: ")]
    return errors[-1][len("error: "):] if errors else None


def _failure_message(log: list[str], how: str, last_step: str) -> str:
    """What the user reads when the engine ended badly: its error line, else how it ended,
    its last step and its last output (a crash in C code leaves no Python message)."""
    line = _error_line(log)
    if line is not None:
        return line
    return (f"the engine process {how} (out of memory, or a crash in a compiled library). "
            f"Its last step was: {last_step}. Its last output:\n" + "\n".join(log[-15:]))


class BackgroundAnalysis:
    """One worker process: ``fraction``/``message`` follow its progress lines, ``log`` the rest.

    :param command_prefix: the interpreter (and launcher arguments) to start :mod:`worker` with;
        default ``[PythonSlicer]`` or this Python. Tests put a launcher script here.
    """

    def __init__(self, image_path, mask_path, output_dir, bundle_path="", endpoints=None,
                 thickness_mm: float | None = None, device: str = "auto", python: str | None = None,
                 command_prefix: list[str] | None = None, radiomics_backend: str = "auto"):
        self.output_dir = Path(output_dir)
        prefix = list(command_prefix) if command_prefix else [python or python_executable()]
        command = [*prefix, str(WORKER), "--image", str(image_path),
                   "--mask", str(mask_path), "--output", str(self.output_dir),
                   "--bundle", str(bundle_path or ""), "--device", device,
                   "--radiomics-backend", radiomics_backend]
        if thickness_mm is not None:
            command += ["--thickness-mm", str(thickness_mm)]
        if endpoints:
            command += ["--endpoints", *endpoints]
        self.command = command
        self.fraction = 0.0
        self.message = "starting the engine"
        self.log: list[str] = []
        self.cancelled = False
        self.context: dict = {}
        self._lock = threading.Lock()
        self._exited_at: float | None = None
        self.orphaned = False
        self._returncode: int | None = None
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, encoding="utf-8",
                                        errors="replace", env=child_environment(), **popen_options())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

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

        Never blocks: a launcher that has exited while its child still holds the output pipe is
        given :data:`ORPHAN_GRACE_S`, then the tree is killed.
        """
        if self._returncode is not None:
            return self._returncode
        code = self.process.poll()
        if code is None:
            return None
        if self._reader.is_alive() and not self.cancelled:
            # (After our own Cancel the whole tree is dead: the reader only has the EOF left to
            # read, so the job is over; without this a poll right after cancel() raced the reader.)
            now = time.monotonic()
            if self._exited_at is None:
                self._exited_at = now
            if now - self._exited_at < ORPHAN_GRACE_S:
                return None
            # CTKAppLauncher waits for its child, so this is abnormal: stop the tree, fail the job.
            self.orphaned = True
            self._kill_tree()
            self._reader.join(timeout=0.05)
            if self._reader.is_alive():
                return None
            code = code or 1
        self._returncode = code
        return code

    def wait(self, timeout: float | None = None) -> int:
        """Block until the job ends (console and tests only; the GUI polls). Raises
        ``TimeoutError`` with the worker's last message when ``timeout`` passes."""
        return _wait(self, timeout)

    def _kill_tree(self) -> None:
        _kill_process_tree(self.process)

    def cancel(self) -> None:
        """Kill the worker and everything it started (a launcher's child python included)."""
        self.cancelled = True
        self._kill_tree()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("the engine process %d did not end after kill", self.process.pid)

    def error_message(self) -> str:
        """The worker's ``error: ...`` line, or what is known about an unexpected crash."""
        with self._lock:
            log = list(self.log)
        code = self._returncode if self._returncode is not None else self.process.returncode
        if self.orphaned and not _error_line(log):
            return (f"the engine process's launcher exited while the engine still ran (it was stopped). "
                    f"Its last step was: {self.message}.")
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"stopped unexpectedly with exit status {code}"
        return _failure_message(log, how, self.message)


class EngineProcess:
    """One engine (``worker.py --serve``) kept alive across Runs, with its bundle loaded.

    The Logic keeps one per bundle path and closes it when the bundle changes or Slicer exits
    (closing its stdin ends it; it also ends by itself when Slicer dies, as its stdin closes).
    Cancel kills it, and its whole tree, like a one-shot worker: the next Run starts a new one.
    """

    def __init__(self, bundle_path: str = "", device: str = "auto", command_prefix: list[str] | None = None):
        self.bundle_path = str(bundle_path or "")
        self.device = device
        prefix = list(command_prefix) if command_prefix else [python_executable()]
        self.command = [*prefix, str(WORKER), "--serve"]
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.PIPE, text=True, encoding="utf-8",
                                        errors="replace", env=child_environment(), **popen_options())
        self.job: EngineJob | None = None
        self.runs = 0
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return self.process.poll() is None and self._reader.is_alive()

    def serves(self, bundle_path, device: str, command_prefix) -> bool:
        prefix = list(command_prefix) if command_prefix else [python_executable()]
        return (self.alive() and self.job is None and self.bundle_path == str(bundle_path or "")
                and self.device == device and self.command[:-2] == prefix)

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

    def submit(self, job: "EngineJob", request: dict) -> None:
        with self._lock:
            if self.job is not None:
                raise RuntimeError("the engine is busy with another run")
            self.job = job
        self.runs += 1
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError as error:
            with self._lock:
                self.job = None
            raise RuntimeError(f"the engine process ended before the run started ({error})") from None

    def kill(self) -> None:
        _kill_process_tree(self.process)
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
    """One run on an :class:`EngineProcess`; the same handle as :class:`BackgroundAnalysis`."""

    def __init__(self, engine: EngineProcess, image_path, mask_path, output_dir, endpoints=None,
                 thickness_mm: float | None = None, radiomics_backend: str = "auto"):
        self.engine = engine
        self.process = engine.process
        self.output_dir = Path(output_dir)
        self.fraction = 0.0
        self.message = "starting the engine" if engine.runs == 0 else "engine ready"
        self.log: list[str] = []
        self.cancelled = False
        self.context: dict = {}
        self.bundle_loads: int | None = None
        self._lock = threading.Lock()
        self._returncode: int | None = None
        engine.submit(self, {"image": str(image_path), "mask": str(mask_path), "output": str(self.output_dir),
                             "bundle": engine.bundle_path, "device": engine.device,
                             "endpoints": list(endpoints) if endpoints else None, "thickness_mm": thickness_mm,
                             "radiomics_backend": radiomics_backend})

    def _line(self, line: str) -> None:
        _record_line(self, line)

    def _done(self, code: int) -> None:
        with self._lock:
            self._returncode = code

    def poll(self):
        """None while running; the run's status once it is answered (or the engine died)."""
        with self._lock:
            if self._returncode is not None:
                return self._returncode
        code = self.engine.process.poll()
        if code is None:
            return None
        if self.engine._reader.is_alive():
            # A launcher gone while its child holds the pipe: as in BackgroundAnalysis.poll.
            now = time.monotonic()
            self._exited_at = getattr(self, "_exited_at", None) or now
            if now - self._exited_at < ORPHAN_GRACE_S:
                return None
            self.engine.kill()
            if self.engine._reader.is_alive():
                return None
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
        code = self.engine.process.poll()
        if code is None:
            how = f"failed with status {self._returncode}"
        elif code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"stopped unexpectedly with exit status {code}"
        return _failure_message(log, how, self.message)
