"""The benchmark's statistics and /proc parsing (scripts/bench): the numbers it reports are
only as good as these helpers. Performance itself is measured by the bench, not asserted."""

from __future__ import annotations

import os
import resource
import time

import pytest

from bench import proc
from bench.phase_reconnect import gaps_from_sessions, reconnects
from bench.profile import summarize_raw
from bench.stats import (
    CpuTimes,
    cumulative_import_us,
    growth,
    import_subtree,
    parse_cpu_line,
    parse_importtime,
    parse_proc_stat,
    parse_proc_status,
    per_audio_minute,
    percentile,
    ratio,
    steady,
    summarize,
)

pytestmark = pytest.mark.unit


def test_percentiles_interpolate_between_closest_ranks() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5  # order does not matter
    assert percentile([1, 2, 3, 4], 0) == 1
    assert percentile([1, 2, 3, 4], 100) == 4
    assert percentile([1, 2, 3, 4], 25) == pytest.approx(1.75)
    assert percentile([7.0], 99) == 7.0
    hundred = [float(i) for i in range(1, 101)]
    s = summarize(hundred)
    assert (s.count, s.p50, s.minimum, s.maximum, s.mean) == (100, 50.5, 1.0, 100.0, 50.5)
    assert s.p95 == pytest.approx(95.05)
    assert s.p99 == pytest.approx(99.01)
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_ratios_growth_and_rates() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None  # no reference, no ratio (never a division by zero)
    assert growth(40.0, 42.0) == pytest.approx(0.05)
    assert growth(40.0, 38.0) == pytest.approx(-0.05)
    with pytest.raises(ValueError):
        growth(0.0, 1.0)
    assert per_audio_minute(0.5, 30.0) == pytest.approx(1.0)  # 0.5 s of CPU per 30 s audio
    with pytest.raises(ValueError):
        per_audio_minute(1.0, 0.0)
    assert steady([100.0, 50.0, 10.0, 11.0, 12.0, 13.0]) == 12.0  # median of the second half


def test_proc_stat_fields_are_counted_after_the_command_name() -> None:
    # A command name may contain spaces and parentheses; utime/stime are fields 14 and 15.
    line = (
        "4242 (python3 (my) bench) S 1 4242 4242 0 -1 4194560 1234 0 0 0 "
        "517 83 2 1 20 0 3 0 12345 123456789 9876 18446744073709551615"
    )
    times = parse_proc_stat(line)
    assert (times.utime, times.stime, times.total) == (517, 83, 600)
    with pytest.raises(ValueError):
        parse_proc_stat("4242 python3 S 1")


def test_proc_stat_of_this_process_agrees_with_os_times() -> None:
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn CPU so both counters move
        pass
    measured = proc.cpu_seconds(os.getpid())
    t = os.times()
    # the process tree: this process and the children it has waited for (no live ones)
    expected = t.user + t.system + t.children_user + t.children_system
    assert measured == pytest.approx(expected, abs=0.03)
    assert measured >= 0.2


def test_machine_busy_ticks_leave_out_idle_and_iowait() -> None:
    text = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n"
    assert parse_cpu_line(text) == (160, 1000)  # 100+5+50+3+2 busy of 1000
    with pytest.raises(ValueError):
        parse_cpu_line("intr 12345\n")
    busy, total = proc.machine_ticks()
    assert 0 <= busy < total


def test_proc_status_memory_fields() -> None:
    text = (
        "Name:\tpython3\nVmPeak:\t  123456 kB\nVmHWM:\t   48000 kB\n"
        "VmRSS:\t   47312 kB\nThreads:\t4\n"
    )
    assert parse_proc_status(text) == {"VmPeak": 123456, "VmHWM": 48000, "VmRSS": 47312}
    mine = proc.memory_kb(os.getpid())
    assert 0 < mine["VmRSS"] <= mine["VmHWM"]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    assert mine["VmHWM"] == pytest.approx(peak_kb, rel=0.05)
    assert proc.open_fds(os.getpid()) >= 3  # at least stdin, stdout, stderr


def test_cpu_split_by_thread() -> None:
    tick = 1 / proc.CLOCK_TICKS
    before = {10: CpuTimes(100, 10), 11: CpuTimes(5, 5), 12: CpuTimes(0, 0), 13: CpuTimes(1, 1)}
    after = {10: CpuTimes(150, 20), 11: CpuTimes(25, 5), 12: CpuTimes(70, 10), 14: CpuTimes(9, 9)}
    main, others = proc.split_by_thread(10, before, after)
    assert main == pytest.approx(60 * tick)  # the main thread's id is the process id
    assert others == pytest.approx([80 * tick, 20 * tick])  # busiest first; 13 and 14 unpaired


def test_importtime_lines() -> None:
    stderr = (  # as CPython prints it: children first, two spaces per nesting level
        "import time: self [us] | cumulative | imported package\n"
        "import time:       300 |        300 | site\n"
        "import time:       120 |        120 |     _io\n"
        "import time:      3000 |       3120 |   pydantic\n"
        "import time:       900 |      41000 | edgecap.app.daemon\n"
    )
    rows = parse_importtime(stderr)
    assert [(r.module, r.self_us, r.cumulative_us, r.depth) for r in rows] == [
        ("site", 300, 300, 0),
        ("_io", 120, 120, 2),
        ("pydantic", 3000, 3120, 1),
        ("edgecap.app.daemon", 900, 41000, 0),
    ]
    assert cumulative_import_us(rows, "edgecap.app.daemon") == 41000
    assert [r.module for r in import_subtree(rows, "edgecap.app.daemon")] == [
        "_io",
        "pydantic",
        "edgecap.app.daemon",
    ]
    with pytest.raises(KeyError):
        cumulative_import_us(rows, "nothing")


def test_reconnect_gaps_pair_each_drop_with_the_next_sessions_first_audio() -> None:
    def session(code: int | None, closed: float | None, first: float | None) -> dict[str, object]:
        return {"close_code": code, "stamps": {"closed": closed, "first_frame": first}}

    sessions = [
        session(1006, 10.000, 0.5),
        session(1006, 45.000, 10.020),  # 20 ms after the first drop
        session(1000, 80.000, 45.150),  # 150 ms after the second
        session(None, None, 80.5),  # after a clean close: not a drop
    ]
    assert gaps_from_sessions(sessions, 3) == pytest.approx([20.0, 150.0])
    assert gaps_from_sessions(sessions, 1) == pytest.approx([20.0])
    sessions[1]["token_age_s"] = 12.0  # minted long before the drop: the spare token
    sessions[2]["token_age_s"] = 0.1  # fetched after the drop
    assert [prefetched for _, prefetched in reconnects(sessions, 3)] == [True, False]


def test_py_spy_raw_output_summary() -> None:
    raw = (
        "thread (11): MainThread;run (asyncio/runners.py:190);send (ws.py:12) 6\n"
        "thread (11): MainThread;run (asyncio/runners.py:190);send (ws.py:14) 2\n"
        "thread (11): MainThread;_readable (edgecap/audio/capture.py:341) 2\n"
        "not a sample line\n"
    )
    profile = summarize_raw(raw)
    assert profile.samples == 10
    assert profile.threads == [("MainThread", 10)]
    assert profile.self_frames[0] == ("send (ws.py)", 8)  # line numbers merged
    assert dict(profile.categories) == {
        "asyncio machinery (loop, tasks, events)": 8,  # ws.py matches nothing: its caller
        "capture pipe → event loop (read, parse, timestamps)": 2,
    }


def test_the_token_service_section_survives_a_rewrite_of_benchmarks_md() -> None:
    from bench.sections import TOKENS_MARKER, kept_section, with_section

    section = f"{TOKENS_MARKER}\n## 7. edgecap-tokens\n| a |\n"
    old = with_section("# Benchmarks\n\nold tables\n", section)
    assert old == f"# Benchmarks\n\nold tables\n\n{section}"
    rewritten = with_section("# Benchmarks\n\nnew tables\n", kept_section(old))
    assert rewritten == f"# Benchmarks\n\nnew tables\n\n{section}"
    newer = with_section(rewritten, f"{TOKENS_MARKER}\n## 7. again\n")
    assert newer.count(TOKENS_MARKER) == 1
    assert newer.endswith("## 7. again\n")
    assert kept_section("# no section\n") == ""
