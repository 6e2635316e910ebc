"""Progress of long steps: stage lines / bars on stderr, shown only when asked or on a terminal.

The CLI tests run the real commands: in-process (stderr captured, so not a terminal) and in a
child process whose stderr is a pseudo-terminal (so tqdm draws bars).
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from aws_anomaly.cli import main
from aws_anomaly.cli.app import show_progress
from aws_anomaly.data.generator import generate_demo, write_demo
from aws_anomaly.evaluation.split import chronological_split
from aws_anomaly.progress import StderrProgress, echo, reporting, stage, track
from aws_anomaly.tuning import tune


def _lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_no_reporter_no_output(capsys: pytest.CaptureFixture[str]) -> None:
    with stage("quiet", total=2) as s:
        s.advance()
        s.note("x")
    assert list(track([1, 2], "also quiet")) == [1, 2]
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_lines_name_each_stage_its_count_and_its_end() -> None:
    buf = io.StringIO()
    with reporting(StderrProgress(bars=False, stream=buf, every=0.0)), stage("outer"):
        for _ in track(["a", "b"], "inner", note=str):
            pass
        with stage("middle"), stage("deepest"):  # depth 2: not shown with max_depth=2
            pass
    lines = _lines(buf)
    assert lines[0] == "progress: outer ..."
    assert lines[1] == "progress:   inner (0/2) ..."
    assert lines[2].startswith("progress:   inner: 1/2 (") and lines[2].endswith(" a")
    assert lines[4].startswith("progress:   inner: 2/2 done in ")
    assert lines[5] == "progress:   middle ..."
    assert lines[-1].startswith("progress: outer: done in ")
    assert not any("deepest" in ln for ln in lines)


def test_inside_a_counted_stage_lines_show_only_its_count() -> None:
    buf = io.StringIO()
    with reporting(StderrProgress(bars=False, stream=buf, every=0.0)), \
            stage("folds", total=2) as folds:
        for _ in range(2):
            with stage("one fold's features"):
                pass
            folds.advance()
    text = buf.getvalue()
    assert "one fold's features" not in text
    assert "progress: folds: 2/2 done in " in text


def test_a_failed_stage_says_it_stopped() -> None:
    buf = io.StringIO()
    with pytest.raises(RuntimeError), reporting(StderrProgress(bars=False, stream=buf)), \
            stage("doomed"):
        raise RuntimeError("boom")
    assert _lines(buf)[-1].startswith("progress: doomed: stopped after ")


def test_echo_goes_to_stdout_with_or_without_reporter(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    echo("plain")
    with reporting(StderrProgress(bars=False)), stage("s"):
        echo("while a stage runs")
    captured = capsys.readouterr()
    assert captured.out == "plain\nwhile a stage runs\n"
    assert "progress: s ..." in captured.err and "while a stage" not in captured.err


def test_default_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert show_progress(None) is False
    assert show_progress(True) is True
    monkeypatch.setattr(sys, "stderr", Tty())
    assert show_progress(None) is True
    assert show_progress(False) is False


def test_tune_counts_its_trials() -> None:
    ds, _ = generate_demo(clusters=1, days=8, seed=2)
    dev = chronological_split(ds).development
    buf = io.StringIO()
    with reporting(StderrProgress(bars=False, stream=buf, every=0.0)):
        tune(dev, "robust", 2, seed=0)
    text = buf.getvalue()
    assert "progress: tuning robust (trials) (0/2) ..." in text
    assert "progress: tuning robust (trials): 2/2 done in " in text


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("progress")
    write_demo(root / "data", clusters=1, days=8, seed=4)
    assert main(["train", "--data", str(root / "data"), "--out", str(root / "model"),
                 "--detector", "robust", "--threshold", "fpr:0.01", "--no-progress"]) == 0
    return root / "data", root / "model"


def test_train_progress_on_stderr_only_when_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds_dir = tmp_path / "d"
    write_demo(ds_dir, clusters=1, days=8, seed=4)
    capsys.readouterr()
    assert main(["train", "--data", str(ds_dir), "--detector", "robust", "--threshold",
                 "fpr:0.01", "--out", str(tmp_path / "m1"), "--progress"]) == 0
    forced = capsys.readouterr()
    for step in ("reading ", "fitting the robust model", "features of the training data",
                 "fitting the robust detector on ", "scoring the test part"):
        assert f"progress: {step}" in forced.err or f"progress:   {step}" in forced.err, step
    assert "progress:" not in forced.out
    assert "model (robust) saved to" in forced.out


def test_score_progress_forced_and_default(trained: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data, model = trained
    capsys.readouterr()
    assert main(["score", "--data", str(data), "--model", str(model),
                 "--out", str(tmp_path / "a.csv"), "--progress"]) == 0
    forced = capsys.readouterr()
    assert "progress: scoring " in forced.err and "progress: writing " in forced.err
    assert "progress:   features of the scoring data" in forced.err
    assert "progress:" not in forced.out
    assert main(["score", "--data", str(data), "--model", str(model),
                 "--out", str(tmp_path / "b.csv")]) == 0
    assert "progress:" not in capsys.readouterr().err
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def _run_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (status, stdout, terminal text)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "aws_anomaly", *args],
                            stdout=subprocess.PIPE, stderr=follower, text=True,
                            env=dict(os.environ))
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def test_bars_on_a_terminal_by_default(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    code, out, term = _run_on_a_terminal(["score", "--data", str(data), "--model", str(model),
                                          "--out", str(tmp_path / "a.csv")])
    assert code == 0, term
    assert "scoring " in term and "\r" in term  # a tqdm bar, redrawn in place
    assert "progress:" not in term  # bars, not the lines of a log
    assert "progress:" not in out and "scored " in out


def test_no_progress_hides_it_on_a_terminal(trained: tuple[Path, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    data, model = trained
    base = ["score", "--data", str(data), "--model", str(model)]
    for flag, shown in ((None, True), ("--no-progress", False)):
        err = Terminal()
        monkeypatch.setattr(sys, "stderr", err)
        args = [*base, "--out", str(tmp_path / f"{flag}.csv")] + ([flag] if flag else [])
        assert main(args) == 0
        assert ("scoring " in err.getvalue()) is shown, flag
    assert "progress:" not in capsys.readouterr().out
