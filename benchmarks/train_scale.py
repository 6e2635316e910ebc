"""Training at scale: ``aws-anomaly train`` on 500,000 rows, as a user runs it.

Usage::

    .venv/bin/python benchmarks/train_scale.py [--clusters 10] [--days 174]
        [--detector auto --detector default] [--profile] [--out out/bench/train_scale.json]

Data: ``aws-anomaly generate --clusters 10 --days 174`` (5-minute steps: 10 x 50,112 = 501,120
rows with labelled anomalies), written once under ``out/bench/train_scale/data`` and reused.

Each ``--detector`` value is one run of ``aws-anomaly train --data DATA --out MODEL --detector
D --progress`` in a child process (the installed CLI path, nothing imported here): ``auto`` is
what ``train`` does on labelled data (detector selection on rolling folds, then the chosen
detector), ``default`` the label-free default model (kNN), what ``train`` picks without labels.

Measured per run: wall time, peak RSS of the child (``os.wait4``), and where they go: the
child's ``progress:`` lines (stderr, forced with ``--progress``) give each long step's duration,
and the child's RSS, sampled every 50 ms from ``/proc``, gives each step's peak memory. The test
F1 the run reports (from the saved bundle) shows what any row cap costs. ``--profile`` also runs
the child under ``cProfile`` and prints the 20 functions with the largest cumulative time (the
profile is kept next to the JSON; timings under the profiler are ~10 % slower).

Prints a table; writes the JSON (with the 1/5/15-minute load average before and after each
run: on a shared machine the load moves every figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
AIM_SECONDS = 60.0
AIM_PEAK_MB = 1024.0
_STAGE = re.compile(r"^progress: (?P<indent> *)(?P<label>.+?)(?: \(0/\d+\))? \.\.\.$")
_DONE = re.compile(r"^progress: (?P<indent> *)(?P<label>.+?): (?:\d+/\d+ )?"
                   r"(?P<how>done in|stopped after) (?P<s>[\d.]+) s$")


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("aws-anomaly")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "aws_anomaly"]


def _rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) / 1024 if m else None


def generate(data: Path, clusters: int, days: float, seed: int) -> Path:
    if (data / "metrics.csv").is_file():
        print(f"data: reusing {data}", flush=True)
        return data
    t0 = time.perf_counter()
    subprocess.run([*_cli(), "generate", "--out", str(data), "--clusters", str(clusters),
                    "--days", str(days), "--seed", str(seed)], check=True)
    print(f"data: generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return data


def run_train(data: Path, model: Path, detector: str, profile: Path | None) -> dict[str, Any]:
    """One ``train`` in a child process: wall time, peak RSS, per-step seconds and peak RSS."""
    cmd = [*_cli(), "train", "--data", str(data), "--out", str(model), "--detector", detector,
           "--progress"]
    if profile is not None:
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "aws_anomaly",
               *cmd[cmd.index("train"):]]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    events: list[tuple[float, str]] = []
    stdout: list[str] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = _rss_mb(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, rss))
            done.wait(0.05)

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            events.append((time.perf_counter() - t0, line.rstrip("\n")))

    def read_out() -> None:
        assert proc.stdout is not None
        stdout.extend(proc.stdout)

    threads = [threading.Thread(target=f, daemon=True) for f in (sample, read_err, read_out)]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    for t in threads:
        t.join(timeout=5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = "\n".join(line for _, line in events[-20:])
        raise SystemExit(f"train --detector {detector} failed ({proc.returncode}):\n{tail}")
    steps = _steps(events, samples)
    manifest = json.loads((model / "manifest.json").read_text())
    test = (manifest.get("evaluation") or {}).get("test", {})
    chosen = manifest.get("model", {}).get("detector")
    return {"detector": detector, "chosen": chosen, "seconds": round(wall, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "test_f1": test.get("f1"), "test_event_recall": test.get("event_recall"),
            "test_flagged_share": test.get("flagged_share"),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "steps": steps, "stdout_tail": "".join(stdout[-8:])}


def _steps(events: list[tuple[float, str]], samples: list[tuple[float, float]]
           ) -> list[dict[str, Any]]:
    """Each progress stage: its depth, label, seconds and the peak RSS sampled while open."""
    open_: list[tuple[int, str, float]] = []
    steps = []
    for t, line in events:
        m = _STAGE.match(line)
        if m:
            open_.append((len(m.group("indent")) // 2, m.group("label"), t))
            continue
        m = _DONE.match(line)
        if m:
            depth, label = len(m.group("indent")) // 2, m.group("label")
            for i in range(len(open_) - 1, -1, -1):
                if open_[i][0] == depth and open_[i][1] == label:
                    _, _, start = open_.pop(i)
                    peak = max((r for s, r in samples if start <= s <= t), default=None)
                    steps.append({"depth": depth, "step": label, "start": round(start, 1),
                                  "seconds": float(m.group("s")),
                                  "peak_rss_mb": None if peak is None else round(peak, 1)})
                    break
    return sorted(steps, key=lambda s: s["start"])


def top_functions(profile: Path, n: int = 20) -> list[dict[str, Any]]:
    stats = pstats.Stats(str(profile))
    rows = []
    for (file, line, name), (_cc, ncalls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "aws_anomaly" in file or "pandas" in file or "sklearn" in file:
            where = file.split("site-packages/")[-1].split("src/")[-1]
            rows.append({"function": f"{where}:{line}({name})", "calls": ncalls,
                         "own_s": round(tt, 2), "cumulative_s": round(ct, 2)})
    rows.sort(key=lambda r: -r["cumulative_s"])
    return rows[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--days", type=float, default=174)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector", action="append", default=None,
                    help="train's --detector, one run each (default: auto and default)")
    ap.add_argument("--data", type=Path, default=None,
                    help="data folder (default: out/bench/train_scale/data-<clusters>x<days>)")
    ap.add_argument("--profile", action="store_true", help="also profile each run (cProfile)")
    ap.add_argument("--out", type=Path, default=Path("out/bench/train_scale.json"))
    args = ap.parse_args(argv)

    work = args.out.with_suffix("")
    data = args.data or work / f"data-{args.clusters}x{args.days:g}"
    generate(data, args.clusters, args.days, args.seed)
    runs = []
    for detector in args.detector or ["auto", "default"]:
        profile = work / f"train-{detector}.prof" if args.profile else None
        print(f"\ntrain --detector {detector} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
        r = run_train(data, work / f"model-{detector}", detector, profile)
        runs.append(r)
        print(f"{'step':<64}{'seconds':>9}{'peak MB':>9}")
        for s in r["steps"]:
            peak = "-" if s["peak_rss_mb"] is None else f"{s['peak_rss_mb']:.0f}"
            print(f"{'  ' * s['depth'] + s['step']:<64.64}{s['seconds']:>9.1f}{peak:>9}")
        if profile is not None:
            r["profile"] = str(profile)
            r["top_functions"] = top_functions(profile)
            print(f"\n{'function (cumulative)':<76}{'s':>8}")
            for f in r["top_functions"]:
                print(f"{f['function']:<76.76}{f['cumulative_s']:>8.1f}")

    print(f"\n{'run':<26}{'chosen':<10}{'seconds':>9}{'CPU s':>8}{'peak MB':>9}{'test F1':>9}"
          f"{'load 1m':>9}")
    print("-" * 80)
    for r in runs:
        f1 = "-" if r["test_f1"] is None else f"{r['test_f1']:.3f}"
        print(f"{'train --detector ' + r['detector']:<26}{r['chosen'] or '-':<10}"
              f"{r['seconds']:>9.1f}{r['cpu_seconds']:>8.1f}{r['peak_rss_mb']:>9.0f}{f1:>9}"
              f"{r['load_avg_before'][0]:>9.1f}")
    print(f"aim: < {AIM_SECONDS:.0f} s and < {AIM_PEAK_MB:.0f} MB per run "
          f"({os.cpu_count()} CPUs; the load average is the machine's, other work included)")
    rows = sum(1 for _ in (data / "metrics.csv").open()) - 1
    result = {"data": str(data), "clusters": args.clusters, "days": args.days,
              "rows_in_file": rows, "runs": runs, "aim": {"seconds": AIM_SECONDS,
                                                         "peak_rss_mb": AIM_PEAK_MB},
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "machine": platform.machine(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
