"""The background engine process as Slicer starts it: through a launcher.

Slicer's ``PythonSlicer`` is a CTKAppLauncher wrapper: it sets up the environment and starts the
real Python as a child process. These tests put a real launcher script in front of the worker
(it starts a child Python with the worker and waits for it, as CTKAppLauncher does), so Cancel
must end both processes, the GUI-side ``poll`` must never block (even when the launcher has gone
and a child still holds the output pipe), and a crash must read as a clear message. POSIX
process groups are exercised here, and the tree recorded while the launcher lives (a child that
escapes the group, as one outside a Windows job object escapes ``taskkill /T`` of a dead launcher,
is still killed by its recorded PID; without psutil the job is given up after a bounded time);
the Windows branch itself (``taskkill /T /F``, hidden console) can only be read
(Testing/test_slicer_static.py), as no Windows machine runs these tests.
"""
from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

from conftest import make_case
from DeepRadScoreLib.io.images import load_case
from DeepRadScoreSlicerLib import background
from DeepRadScoreSlicerLib.background import BackgroundAnalysis
from DeepRadScoreSlicerLib.worker import RunRequest

LAUNCHER = textwrap.dedent("""
    # Like CTKAppLauncher: start the real Python as a child (same stdout), record its pid, wait.
    import os, subprocess, sys
    child = subprocess.Popen([sys.executable, *sys.argv[1:]])
    with open(os.environ.get("LAUNCHER_PIDFILE", os.devnull), "w") as f:
        f.write(str(child.pid))
    sys.exit(child.wait())
""")

# A launcher that does not wait: it exits at once and leaves its child holding the pipe.
DESERTING_LAUNCHER = textwrap.dedent("""
    import os, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; print('child up', flush=True); time.sleep(120)"])
    with open(os.environ["LAUNCHER_PIDFILE"], "w") as f:
        f.write(str(child.pid))
""")

# A launcher whose child leaves the process group (os.setsid), so a group kill cannot reach it,
# as a Windows child outside a job object is out of reach of taskkill /T once its launcher died;
# the launcher lives a moment (the tree is recorded meanwhile), then deserts.
ESCAPING_LAUNCHER = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
                              "import os, time; os.setsid(); print('child up', flush=True); time.sleep(120)"])
    with open(os.environ["LAUNCHER_PIDFILE"], "w") as f:
        f.write(str(child.pid))
    time.sleep(1.5)
""")


def request(tmp_path, image="image", mask="mask") -> RunRequest:
    return RunRequest(image=str(image), mask=str(mask), output=str(tmp_path / "result"))


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines() if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "Z" not in state.split()[1]


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def case_files(tmp_path: Path, image, mask) -> tuple[Path, Path]:
    image_path, mask_path = tmp_path / "image.nrrd", tmp_path / "mask.nrrd"
    sitk.WriteImage(image, str(image_path))
    sitk.WriteImage(mask, str(mask_path))
    return image_path, mask_path


def job_via(tmp_path, prefix, image_path, mask_path, monkeypatch, pidfile="child.pid") -> BackgroundAnalysis:
    monkeypatch.setenv("LAUNCHER_PIDFILE", str(tmp_path / pidfile))
    return BackgroundAnalysis(request(tmp_path, image_path, mask_path), command_prefix=prefix)


def test_worker_through_a_launcher_finishes(tmp_path, monkeypatch):
    launcher = script(tmp_path, "launcher.py", LAUNCHER)
    image_path, mask_path = case_files(tmp_path, *make_case())
    job = job_via(tmp_path, [sys.executable, str(launcher)], image_path, mask_path, monkeypatch)
    assert job.wait(timeout=300) == 0, job.error_message()
    assert job.fraction == 1.0
    assert (tmp_path / "result" / "result.json").exists()


def test_cancel_kills_the_launcher_and_its_child(tmp_path, monkeypatch, phantom_paths):
    launcher = script(tmp_path, "launcher.py", LAUNCHER)
    case = load_case(*phantom_paths)
    image_path, mask_path = case_files(tmp_path, case.image, case.mask)
    job = job_via(tmp_path, [sys.executable, str(launcher)], image_path, mask_path, monkeypatch)
    # Wait until the child python runs the engine (it reports progress), then cancel.
    assert wait_until(lambda: job.message != "starting the engine", 120), job.log
    child = int((tmp_path / "child.pid").read_text())
    assert alive(child) and alive(job.process.pid)
    started = time.monotonic()
    job.cancel()
    assert time.monotonic() - started < 5
    assert wait_until(lambda: not alive(child), 5), "the launcher's child python survived Cancel"
    assert not alive(job.process.pid)
    assert wait_until(lambda: job.poll() is not None, 5)
    assert job.process.returncode < 0
    assert not (tmp_path / "result" / "result.json").exists()


def test_poll_never_blocks_when_a_child_outlives_its_launcher(tmp_path, monkeypatch):
    launcher = script(tmp_path, "deserting.py", DESERTING_LAUNCHER)
    job = job_via(tmp_path, [sys.executable, str(launcher)], "image", "mask", monkeypatch)
    assert wait_until(lambda: (tmp_path / "child.pid").exists() and job.process.poll() is not None, 30)
    child = int((tmp_path / "child.pid").read_text())
    assert alive(child)  # it holds our output pipe
    slowest, code = 0.0, None
    deadline = time.monotonic() + background.ORPHAN_GRACE_S + 10
    while code is None and time.monotonic() < deadline:
        before = time.monotonic()
        code = job.poll()
        slowest = max(slowest, time.monotonic() - before)
        time.sleep(0.05)
    assert slowest < 0.5, f"poll blocked the GUI thread for {slowest:.2f} s"
    assert code is not None and code != 0
    assert wait_until(lambda: not alive(child), 5)
    assert "launcher" in job.error_message()


def poll_until_done(job, limit_s):
    """Poll as the GUI does; returns (status, slowest poll) or fails after ``limit_s``."""
    slowest, code = 0.0, None
    deadline = time.monotonic() + limit_s
    while code is None:
        assert time.monotonic() < deadline, "poll() never ended the job"
        before = time.monotonic()
        code = job.poll()
        slowest = max(slowest, time.monotonic() - before)
        time.sleep(0.05)
    return code, slowest


def test_a_child_that_escapes_the_group_is_killed_by_its_recorded_pid(tmp_path, monkeypatch):
    launcher = script(tmp_path, "escaping.py", ESCAPING_LAUNCHER)
    job = job_via(tmp_path, [sys.executable, str(launcher)], "image", "mask", monkeypatch)
    bound = background.ORPHAN_GRACE_S + background.ORPHAN_GIVE_UP_S + 10
    code, slowest = poll_until_done(job, bound)
    child = int((tmp_path / "child.pid").read_text())
    try:
        assert code != 0 and slowest < 0.5
        assert child in job.tree.known  # recorded while the launcher lived
        assert wait_until(lambda: not alive(child), 5), "the escaped child survived"
        assert "launcher" in job.error_message()
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_without_psutil_an_unreachable_child_is_given_up_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(background, "psutil", None)
    launcher = script(tmp_path, "escaping.py", ESCAPING_LAUNCHER)
    job = job_via(tmp_path, [sys.executable, str(launcher)], "image", "mask", monkeypatch)
    bound = background.ORPHAN_GRACE_S + background.ORPHAN_GIVE_UP_S + 10
    code, slowest = poll_until_done(job, bound)
    child = int((tmp_path / "child.pid").read_text())
    try:
        assert code != 0 and slowest < 0.5
        assert job.tree.given_up and alive(child)  # out of reach: the job ended anyway
        assert "launcher exited" in job.error_message()
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_crashing_worker_is_a_clear_message(tmp_path):
    crash = script(tmp_path, "crash.py", "import os, sys\nprint('PROGRESS 0.3000 radiomics', flush=True)\n"
                                         "print('Segmentation fault in libfoo', flush=True)\nos.abort()\n")
    job = BackgroundAnalysis(request(tmp_path), command_prefix=[sys.executable, str(crash)])
    code = job.wait(timeout=60)
    assert code < 0
    message = job.error_message()
    assert message.startswith("the engine process was killed by signal")
    assert "radiomics" in message and "Segmentation fault in libfoo" in message

    exits = script(tmp_path, "exits.py", "import sys\nprint('something odd')\nsys.exit(3)\n")
    job = BackgroundAnalysis(request(tmp_path), command_prefix=[sys.executable, str(exits)])
    assert job.wait(timeout=60) == 3
    assert "stopped unexpectedly with exit status 3" in job.error_message()

    user_error = script(tmp_path, "user.py", "import sys\nprint('error: mask.nrrd: the tumour mask is empty')\n"
                                             "sys.exit(2)\n")
    job = BackgroundAnalysis(request(tmp_path), command_prefix=[sys.executable, str(user_error)])
    assert job.wait(timeout=60) == 2
    assert job.error_message() == "mask.nrrd: the tumour mask is empty"


def test_output_that_is_not_utf8_is_replaced_not_fatal(tmp_path):
    writer = script(tmp_path, "bytes.py", "import sys\nsys.stdout.buffer.write(b'caf\\xe9 \\xff\\n')\n"
                                          "print('PROGRESS 0.5000 Hounsfield \u00e9t\u00e9', flush=True)\n")
    job = BackgroundAnalysis(request(tmp_path), command_prefix=[sys.executable, str(writer)])
    assert job.wait(timeout=60) == 0
    assert job.log == ["caf\ufffd \ufffd"]
    assert job.fraction == pytest.approx(0.5) and job.message == "Hounsfield \u00e9t\u00e9"


def test_wait_times_out_with_a_message_instead_of_hanging(tmp_path):
    sleeper = script(tmp_path, "sleep.py", "import time\nprint('PROGRESS 0.1000 sleeping', flush=True)\ntime.sleep(60)\n")
    job = BackgroundAnalysis(request(tmp_path), command_prefix=[sys.executable, str(sleeper)])
    with pytest.raises(TimeoutError, match="sleeping"):
        job.wait(timeout=1.0)
    job.cancel()
    assert job.poll() is not None


def test_a_kept_engine_exits_when_slicer_dies(tmp_path):
    """The engine reads its requests from Slicer's pipe: when Slicer is gone (killed, not even
    closing it), the pipe's end makes the engine exit instead of lingering."""
    parent = script(tmp_path, "parent.py", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(background.__file__).resolve().parent.parent)!r})
        from DeepRadScoreSlicerLib.background import EngineProcess
        engine = EngineProcess(command_prefix=[sys.executable])
        print(engine.process.pid, flush=True)
        time.sleep(120)
    """))
    import subprocess

    slicer_like = subprocess.Popen([sys.executable, str(parent)], stdout=subprocess.PIPE, text=True)
    engine_pid = int(slicer_like.stdout.readline())
    assert alive(engine_pid)
    slicer_like.kill()
    slicer_like.wait()
    assert wait_until(lambda: not alive(engine_pid), 60), "the engine outlived the process that started it"


def test_cancel_kills_a_kept_engine_started_through_a_launcher(tmp_path, monkeypatch, phantom_paths):
    launcher = script(tmp_path, "launcher.py", LAUNCHER)
    monkeypatch.setenv("LAUNCHER_PIDFILE", str(tmp_path / "child.pid"))
    engine = background.EngineProcess(command_prefix=[sys.executable, str(launcher)])
    case = load_case(*phantom_paths)
    image_path, mask_path = case_files(tmp_path, case.image, case.mask)
    job = background.EngineJob(engine, request(tmp_path, image_path, mask_path))
    assert wait_until(lambda: job.fraction > 0.0, 120), job.log
    child = int((tmp_path / "child.pid").read_text())
    slowest = 0.0
    for _ in range(5):
        before = time.monotonic()
        assert job.poll() is None
        slowest = max(slowest, time.monotonic() - before)
    assert slowest < 0.2
    job.cancel()
    assert wait_until(lambda: not alive(child), 5) and not alive(engine.process.pid)
    assert job.poll() is not None and job.cancelled
    assert not engine.alive()
