"""Every CLI error is one ``error: ...`` line and exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aws_anomaly.calibration import Calibrator
from aws_anomaly.cli import main
from aws_anomaly.config import ServiceConfig
from aws_anomaly.data.io import read_dataset
from aws_anomaly.errors import ConfigError, DataError, plain, show


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(args))
    return rc, capsys.readouterr().err


def one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "pydantic" not in err
    return err.strip()


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A file where a folder would have to be."""
    f = tmp_path / "a-file"
    f.write_text("x")
    return f


@pytest.mark.parametrize(("args", "named"), [
    (["train", "--data", "unused", "--out", "{b}/model"], "--out"),
    (["evaluate", "--data", "unused", "--model", "unused", "--report", "{b}/r"], "--report"),
    (["tune", "--data", "unused", "--out", "{b}/best"], "--out"),
    (["demo", "--out", "{b}/demo"], "--out"),
    (["serve", "--data-dir", "{b}/data"], "--data-dir"),
    (["rules", "--out", "{b}/rules.yml"], "--out"),
    (["bench", "demo", "--out", "{b}/bench"], "--out"),
    (["bench", "nab", "--data", "unused", "--out", "{b}/nab"], "--out"),
    (["bench", "servers", "--data", "unused", "--out", "{b}/servers"], "--out"),
])
def test_an_output_below_a_file_is_one_line(capsys: pytest.CaptureFixture[str], blocker: Path,
                                            args: list[str], named: str) -> None:
    rc, err = run(capsys, *(a.format(b=blocker) for a in args))
    assert rc == 2
    assert one_line(err) == (f"error: {named} {blocker}/{Path(args[-1]).name}: {blocker} is a "
                             "file, not a folder")


def test_an_output_folder_that_is_a_file(capsys: pytest.CaptureFixture[str],
                                         blocker: Path) -> None:
    rc, err = run(capsys, "train", "--data", "unused", "--out", str(blocker))
    assert rc == 2 and "this is a file, not a folder; give a folder path" in one_line(err)
    # nothing was created on the way to refusing
    rc, err = run(capsys, "train", "--data", str(blocker.parent / "missing.csv"), "--out",
                  str(blocker.parent / "new" / "model"))
    assert rc == 2 and "does not exist" in one_line(err)
    assert not (blocker.parent / "new").exists()


def test_serve_host_without_token_names_the_ways_to_give_one(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ANOMALY__SERVICE__TOKEN", raising=False)
    rc, err = run(capsys, "serve", "--host", "0.0.0.0")
    assert rc == 2
    assert one_line(err) == (
        "error: --host 0.0.0.0 is not loopback, so the API needs a token: pass --token TOKEN, "
        "set AWS_ANOMALY__SERVICE__TOKEN, or set service.token_env in the config file")
    rc, err = run(capsys, "serve", "--host", "0.0.0.0", "--token", " ")
    assert rc == 2 and one_line(err) == "error: --token is empty; give the API token (16+ " \
        "characters)"


def test_serve_token_replaces_the_files_token_source() -> None:
    from aws_anomaly.cli.serve import service_settings

    svc = ServiceConfig(host="0.0.0.0", token_env="SOME_ENV")
    got = service_settings(svc, token="a-token-of-24-characters", port=9000)
    assert got.token is not None and got.token.get_secret_value() == "a-token-of-24-characters"
    assert got.token_env is None and got.port == 9000 and got.host == "0.0.0.0"
    # a file's token is kept when --token is not given
    kept = service_settings(ServiceConfig(token="from-the-file-0123456"), host="0.0.0.0")
    assert kept.token is not None and kept.token.get_secret_value() == "from-the-file-0123456"
    assert service_settings(svc) is svc
    with pytest.raises(ConfigError, match=r"^--port: Input should be less than or equal to "
                       r"65535$"):
        service_settings(svc, port=70000)


@pytest.mark.parametrize(("args", "expected"), [
    (["serve", "--port", "99999"], "error: aws-anomaly serve: Invalid value for '--port'"),
    (["train"], "error: aws-anomaly train: Missing option '--out'."),
    (["nosuch"], "error: aws-anomaly: No such command 'nosuch'."),
    (["generate", "--out", "x", "--clusters", "0"],
     "error: aws-anomaly generate: Invalid value for '--clusters'"),
])
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str],
                                   expected: str) -> None:
    rc, err = run(capsys, *args)
    assert rc == 2 and one_line(err).startswith(expected), err
    assert err.strip().endswith("--help)")


def test_bad_durations_name_the_option(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    rc, err = run(capsys, "train", "--data", "unused", "--out", str(tmp_path / "m"),
                  "--step", "1h30x")
    assert rc == 2 and one_line(err).startswith("error: --step '1h30x' is not a duration; ")
    rc, err = run(capsys, "generate", "--out", str(tmp_path / "g"), "--step", "5 min")
    assert rc == 2 and one_line(err).startswith("error: --step '5 min' is not a duration; ")
    rc, err = run(capsys, "rules", "--out", str(tmp_path / "r.yml"), "--job-interval", "0s")
    assert rc == 2 and one_line(err) == "error: job_interval must be positive, got '0s'"


def test_rules_take_a_compound_job_interval(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    rc, err = run(capsys, "rules", "--out", str(out), "--job-interval", "1h30m",
                  "--stale-intervals", "2")
    assert rc == 0, err
    assert "> 10800" in out.read_text()


def test_a_refused_write_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError the checks could not foresee (disk full, permissions changed meanwhile)."""
    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    out = tmp_path / "rules.yml"
    rc, err = run(capsys, "rules", "--out", str(out))
    assert rc == 2 and one_line(err) == f"error: {out}: Permission denied"


def test_numbers_in_messages_are_plain() -> None:
    assert show(np.float64(0.4)) == "0.4" and repr(np.float64(0.4)) == "np.float64(0.4)"
    assert plain({"a": [np.int64(2), np.float32(0.5)]}) == {"a": [2, 0.5]}
    assert show("x") == "'x'" and show(np.arange(3)) == "[0, 1, 2]"
    # the data loader: a long-layout value read as float inf
    cal = Calibrator("best_f1").fit(np.full(40, 0.4), np.r_[np.zeros(35), np.ones(5)])
    assert cal.fallback_ is not None and "all 40 scores are equal (0.4)" in cal.fallback_


def test_infinite_value_in_a_long_export(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    pd.DataFrame({"timestamp": ["2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"],
                  "metric": "cpu", "value": ["0.4", "inf"], "cluster": "a"}).to_csv(p, index=False)
    with pytest.raises(DataError) as info:
        read_dataset(p)
    assert str(info.value) == (f"{p}: 'value' in line 3 is infinite (inf); infinities are not "
                               "measurements: fix or drop those rows")


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--constant", "maybe", "error: --constant must be one of keep, drop, error; got 'maybe'"),
    ("--detector", "nope", "error: unknown detector 'nope'; use auto, default or one of "),
    ("--threshold", "p99", "error: unknown threshold 'p99'"),
    ("--split", "0.5,x,0.5", "error: --split must be three comma-separated fractions"),
])
def test_train_options_are_checked_before_the_data_is_read(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str,
        expected: str) -> None:
    rc, err = run(capsys, "train", "--data", str(tmp_path / "never-read.csv"), "--out",
                  str(tmp_path / "m"), option, value)
    assert rc == 2 and one_line(err).startswith(expected), err
