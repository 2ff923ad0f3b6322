"""The free-core count over a window of useful work: no idle sleep when the work was
long enough, this process's own CPU left out, never fewer than 1 core, a callable job count
resolved once, right before the radiomics."""
from __future__ import annotations

import pytest

from DeepRadScoreLib import resources
from DeepRadScoreLib.resources import CoreWindow, allowed_cores


class _Stat:
    """A /proc/stat file whose counters advance as a test says: :meth:`advance` adds 1000
    jiffies per allowed CPU, ``busy[cpu]`` of them busy (user), the rest idle."""

    def __init__(self, path):
        self.path, self.user, self.idle = path, dict.fromkeys(allowed_cores(), 0), dict.fromkeys(allowed_cores(), 0)
        self.advance({})

    def advance(self, busy: dict[int, int]) -> None:
        for cpu in self.user:
            self.user[cpu] += busy.get(cpu, 0)
            self.idle[cpu] += 1000 - busy.get(cpu, 0)
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"] + [f"cpu{c} {self.user[c]} 0 0 {self.idle[c]} 0 0 0 0 0 0"
                                              for c in sorted(self.user)]
        self.path.write_text("\n".join(lines) + "\nintr 1 2\n")

    def __str__(self):
        return str(self.path)


class _Clock:
    """Wall and CPU time that move only when a test says so (``resources.time`` in its place)."""

    def __init__(self):
        self.wall, self.cpu, self.slept = 100.0, 5.0, []

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.cpu

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.wall += seconds

    def work(self, seconds, cpu_share=1.0):
        self.wall += seconds
        self.cpu += seconds * cpu_share


@pytest.fixture()
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(resources, "time", fake)
    return fake


def test_the_window_spans_the_callers_work_and_leaves_its_own_cpu_out(tmp_path, clock):
    cpus = sorted(allowed_cores())
    stat = _Stat(tmp_path / "stat")
    window = CoreWindow(str(stat))
    clock.work(0.3)  # our own work (reading the case, the regions): one core's worth
    stat.advance({cpus[0]: 1000})  # the first CPU was busy all the window, with our work
    assert window.busy(min_window_s=0.1) == 0.0
    assert window.free_cores(min_window_s=0.1) == len(cpus)
    assert clock.slept == []  # the window was long enough: no idle window of its own
    # Two threads of ours busy (the bundle loading beside the main thread): still ours only.
    if len(cpus) >= 2:
        both = CoreWindow(str(stat))
        clock.work(0.3, cpu_share=2.0)
        stat.advance({cpus[0]: 1000, cpus[1]: 1000})
        assert both.free_cores() == len(cpus)


def test_other_processes_load_is_counted_and_never_below_one_core(tmp_path, clock):
    cpus = sorted(allowed_cores())
    stat = _Stat(tmp_path / "stat")
    window = CoreWindow(str(stat))
    clock.work(0.3, cpu_share=0.0)  # we waited; every CPU was busy with others
    stat.advance({cpu: 1000 for cpu in cpus})
    assert window.busy(min_window_s=0.1) == len(cpus)
    assert window.free_cores(min_window_s=0.1) == 1  # never fewer than one
    # Half a core of ours on a CPU that was busy all along: the other half was someone else's.
    half = CoreWindow(str(stat))
    clock.work(0.3, cpu_share=0.5)
    stat.advance({cpus[-1]: 1000, cpus[0]: 1000})
    assert half.busy() == pytest.approx(min(2, len(cpus)) - 0.5)
    # A window shorter than the minimum sleeps only what is left of it.
    short = CoreWindow(str(stat))
    clock.work(0.02, cpu_share=0.0)
    stat.advance({cpus[-1]: 1000})
    assert short.free_cores(min_window_s=0.1) == max(1, len(cpus) - 1)
    assert clock.slept == [pytest.approx(0.08)]
    # Without /proc/stat the load average stands in, still within 1 .. the affinity set.
    assert 1 <= CoreWindow(str(tmp_path / "absent")).free_cores() <= len(cpus)


def test_the_real_proc_stat_gives_a_count_within_the_affinity_set():
    window = CoreWindow()
    sum(i * i for i in range(200_000))  # some work of ours in the window
    assert 1 <= window.free_cores(min_window_s=0.05) <= len(allowed_cores())


def test_analyse_case_resolves_a_callable_job_count_once_right_before_the_radiomics():
    from conftest import make_case

    from DeepRadScoreLib.pipelines.case import analyse_case

    events = []

    def jobs() -> int:
        events.append("count")
        return 1

    image, mask = make_case(shape=(12, 24, 24), radius_mm=4.0)
    result = analyse_case(image, mask, radiomics_jobs=jobs, progress=lambda f, m: events.append(m))
    assert events.count("count") == 1 and result.radiomics_jobs == 1
    at = events.index("count")
    assert events[at - 1] == "radiomics features (tumour and ring)"  # after the ring and the patch
    assert "count_cores" in result.seconds and result.seconds["count_cores"] < 1.0
