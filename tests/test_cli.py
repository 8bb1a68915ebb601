"""cli.py: the argument types, the thread default and the one error/interruption path of every CLI."""
import argparse
import os
import signal
from fractions import Fraction

import pytest
import torch

import cli
import media.writers
import cpu_threads


@pytest.mark.parametrize("text, rate", [
    # NTSC decimals as video tools read them: N000/1001 exactly.
    ("23.976", Fraction(24000, 1001)), ("29.97", Fraction(30000, 1001)), ("47.952", Fraction(48000, 1001)),
    ("59.94", Fraction(60000, 1001)), ("119.88", Fraction(120000, 1001)), ("59.940", Fraction(60000, 1001)),
    ("23.98", Fraction(24000, 1001)), ("14.985", Fraction(15000, 1001)),
    # Everything else as written.
    ("60", Fraction(60)), ("24.00", Fraction(24)), ("30000/1001", Fraction(30000, 1001)), ("25.5", Fraction(51, 2)),
    ("12.5", Fraction(25, 2)), ("59.9", Fraction(599, 10)), ("29.9", Fraction(299, 10)), ("0.5", Fraction(1, 2)),
])
def test_frame_rates_are_exact(text, rate):
    assert cli.frame_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-24", "abc", "1/0", ""])
def test_bad_frame_rates_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.frame_rate(text)


def proc_stat(*cpus):
    """/proc/stat's text with one line per CPU: (user, idle) ticks, the other fields given too."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{number} {user} 3 5 {idle} 1 0 2 4 0 0" for number, (user, idle) in enumerate(cpus)]
    return "\n".join(lines + ["intr 1 2 3", "ctxt 42", "processes 7"]) + "\n"


def test_cpu_times_are_read_per_cpu(tmp_path):
    path = tmp_path / "stat"
    path.write_text(proc_stat((100, 1000), (200, 50)))
    # idle + iowait; user + nice + system + idle + iowait + irq + softirq + steal (not guest)
    assert cpu_threads.cpu_times(str(path)) == {0: (1001, 1115), 1: (51, 265)}
    assert cpu_threads.cpu_times(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize("idle, cores, threads", [
    (None, 4, 4),              # unknown (no /proc/stat): every core, as before
    (2.0, 2, 2), (1.6, 2, 2),  # idle cores: every one counts
    (1.0, 2, 1), (1.3, 2, 1),  # a core held by another program: left to it
    (0.0, 2, 1), (0.2, 8, 1),  # everything busy: never below 1
    (7.5, 8, 8), (6.4, 8, 6), (9.0, 8, 8),
])
def test_the_thread_default_counts_cores_idle_at_least_half_the_time(idle, cores, threads):
    assert cpu_threads.threads_for_idle_cores(idle, cores) == threads


def test_idle_cores_are_those_this_process_may_use():
    before = {0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (0, 0)}
    after = {0: (15, 15), 1: (0, 15), 2: (15, 15), 3: (7, 14)}
    assert cpu_threads.idle_cores(before, after, [0, 1, 2, 3]) == 2.5
    assert cpu_threads.idle_cores(before, after, [1, 3]) == 0.5   # the affinity, not the machine
    assert cpu_threads.idle_cores(before, after, [5]) is None      # a CPU /proc/stat does not list
    assert cpu_threads.idle_cores(before, before, [0, 1]) is None  # no tick between the samples


def fake_proc_stat(monkeypatch, tmp_path, cpus, snapshots):
    """default_threads() on a machine with these CPUs, reading these /proc/stat texts in turn."""
    path = tmp_path / "stat"
    texts = iter(snapshots)
    path.write_text(next(texts))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu_threads, "PROC_STAT", str(path))
    monkeypatch.setattr(cpu_threads, "allowed_cpus", lambda: cpus)
    monkeypatch.setattr(cpu_threads.time, "sleep", lambda seconds: path.write_text(next(texts)))


def test_thread_default_honours_omp_num_threads_else_the_idle_cores_we_may_use(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads.default_threads() == 3
    # 2 cores, both idle over the sample: 2 threads.
    fake_proc_stat(monkeypatch, tmp_path, [0, 1], [proc_stat((0, 0), (0, 0)), proc_stat((0, 15), (0, 15))])
    assert cpu_threads.default_threads() == 2
    # One of them busy with another program (a busy loop: all user time): 1 thread, and the user is told why.
    fake_proc_stat(monkeypatch, tmp_path, [0, 1], [proc_stat((0, 0), (0, 0)), proc_stat((15, 0), (0, 15))])
    with caplog.at_level("INFO", logger="film"):
        assert cpu_threads.default_threads() == 1
    assert "1 of the 2 cores this process may use is busy" in caplog.text and "--threads" in caplog.text
    # Four CPUs on the machine, this process may use two of them, which are idle.
    fake_proc_stat(monkeypatch, tmp_path, [2, 3], [proc_stat((0, 0), (0, 0), (0, 0), (0, 0)),
                                                   proc_stat((15, 0), (15, 0), (0, 15), (0, 15))])
    assert cpu_threads.default_threads() == 2
    # No /proc/stat (macOS): every core this process may use.
    monkeypatch.setattr(cpu_threads, "PROC_STAT", str(tmp_path / "missing"))
    assert cpu_threads.default_threads() == 2


def test_the_thread_default_is_one_on_one_core_without_watching(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu_threads, "allowed_cpus", lambda: [0])
    monkeypatch.setattr(cpu_threads.time, "sleep", lambda seconds: pytest.fail("watched one core"))
    assert cpu_threads.default_threads() == 1


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux's /proc/stat")
def test_the_thread_default_on_this_machine_is_within_its_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads.available_cores() == len(os.sched_getaffinity(0))
    assert 1 <= cpu_threads.default_threads() <= cpu_threads.available_cores()


def test_a_command_run_in_process_leaves_the_callers_thread_count():
    before = torch.get_num_threads()

    def command(args):
        assert cpu_threads.set_threads(args.threads) == 2 == torch.get_num_threads()
        return 0

    assert cli.run_reporting_errors(command, argparse.Namespace(threads=2)) == 0
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("signal_number, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                                   (signal.SIGINT, 130)])
def test_termination_signals_unwind_like_ctrl_c(capsys, tmp_path, signal_number, status):
    """SIGTERM/SIGHUP become an exception: with-blocks clean up, one line, 128 + the signal."""
    def command(args):
        with media.writers.open_writer(str(tmp_path / "out.mp4"), Fraction(24), 64, 64):
            os.kill(os.getpid(), signal_number)
            raise AssertionError("the signal did not interrupt")

    previous = signal.getsignal(signal.SIGTERM)
    assert cli.run_reporting_errors(command, argparse.Namespace()) == status
    assert capsys.readouterr().err.splitlines() == ["interrupted: nothing was written"]
    assert os.listdir(tmp_path) == []  # the hidden partial file was removed
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers are restored


@pytest.mark.parametrize("error", [ValueError("a value from deep inside"),
                                   FileNotFoundError(2, "No such file or directory", "/nowhere/x")])
def test_value_and_os_errors_are_one_line(capsys, monkeypatch, error):
    monkeypatch.delenv("FILM_DEBUG", raising=False)

    def command(args):
        raise error

    assert cli.run_reporting_errors(command, argparse.Namespace()) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("deep inside" in lines[0]) or ("/nowhere/x" in lines[0])


def test_film_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("FILM_DEBUG", "1")

    def command(args):
        raise ValueError("shown with its traceback")

    with pytest.raises(ValueError):
        cli.run_reporting_errors(command, argparse.Namespace())


@pytest.mark.parametrize("program", ["inference", "inference_video", "export"])
def test_openmp_threads_spin_briefly_unless_the_user_says_otherwise(program):
    """Set before torch loads libgomp (which reads it once): a program's first import is cli."""
    import subprocess
    import sys
    code = (f"import {program}, os, sys; "
            f"print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for given, expected in (({}, ["10000", "None"]), ({"GOMP_SPINCOUNT": "5"}, ["5", "None"]),
                            ({"OMP_WAIT_POLICY": "ACTIVE"}, ["None", "ACTIVE"])):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**environment, **given}, timeout=120,
                                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert result.stdout.split() == expected + ["True"], result.stderr


def test_every_help_fits_an_80_column_terminal(monkeypatch):
    """argparse wraps the option lists to the terminal; the hand-written description and epilog must fit too."""
    import subprocess
    import sys
    import export
    import inference
    import inference_video
    monkeypatch.setenv("COLUMNS", "80")
    helps = {module.__name__: module.build_parser().format_help() for module in (export, inference, inference_video)}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    helps["benchmark"] = subprocess.run([sys.executable, os.path.join(root, "benchmark.py"), "--help"], check=True,
                                        capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}).stdout
    for name, text in helps.items():
        assert "exit" in text or name == "benchmark", name
        long_lines = [line for line in text.splitlines() if len(line) > 80]
        assert long_lines == [], name
