"""Run :mod:`worker` in a child process, follow its progress, and kill it on Cancel.

Pure Python (subprocess + one reader thread): the Slicer widget polls :meth:`poll` from a
``QTimer`` so the GUI stays responsive, and tests drive the same class with a plain loop.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .worker import parse_progress

WORKER = Path(__file__).resolve().parent / "worker.py"


def python_executable() -> str:
    """Slicer's launcher-wrapped Python where it exists, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


class BackgroundAnalysis:
    """One worker process: ``fraction``/``message`` follow its progress lines, ``log`` the rest."""

    def __init__(self, image_path, mask_path, output_dir, bundle_path="", endpoints=None,
                 thickness_mm: float = 3.0, device: str = "auto", python: str | None = None):
        self.output_dir = Path(output_dir)
        command = [python or python_executable(), str(WORKER), "--image", str(image_path),
                   "--mask", str(mask_path), "--output", str(self.output_dir),
                   "--bundle", str(bundle_path or ""), "--thickness-mm", str(thickness_mm),
                   "--device", device]
        if endpoints:
            command += ["--endpoints", *endpoints]
        env = dict(os.environ)
        # The child sees exactly the packages this process sees (e.g. pyradiomics that the
        # SlicerRadiomics extension puts on Slicer's sys.path at run time).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        env["PYTHONUNBUFFERED"] = "1"
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # its own process group: Cancel kills all of it
        else:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        self.fraction = 0.0
        self.message = "starting the engine"
        self.log: list[str] = []
        self.cancelled = False
        self._lock = threading.Lock()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, env=env, **kwargs)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            parsed = parse_progress(line)
            with self._lock:
                if parsed is not None:
                    self.fraction, self.message = parsed
                elif line:
                    self.log.append(line)
        self.process.stdout.close()

    def poll(self):
        """None while running; the exit status once the process and its output are finished."""
        code = self.process.poll()
        if code is None:
            return None
        self._reader.join()
        return code

    def wait(self, timeout: float | None = None) -> int:
        self.process.wait(timeout)
        self._reader.join()
        return self.process.returncode

    def cancel(self) -> None:
        """Kill the worker and everything it started (torch/pyradiomics threads and children)."""
        self.cancelled = True
        if self.process.poll() is not None:
            return
        try:
            if os.name == "posix":
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
        except ProcessLookupError:
            pass
        self.process.wait()

    def error_message(self) -> str:
        """The worker's ``error: ...`` line, or the tail of its output for an unexpected crash."""
        with self._lock:
            errors = [line for line in self.log if line.startswith("error: ")]
            if errors:
                return errors[-1][len("error: "):]
            tail = self.log[-15:]
        return "the engine process failed:\n" + "\n".join(tail)
