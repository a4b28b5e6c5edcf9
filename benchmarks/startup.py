"""How long `curate --help` and `curate status` take to start, against `python -c pass`.

Each command runs in a fresh interpreter, the same number of times, interleaved round by
round so that a noisy neighbour hits every command alike. The same commands also run on the
code of BEFORE_COMMIT (main before the CLI imported its parts lazily, read with git) as the
baseline. `status` reads a workdir that a run through filters wrote first. Run it on a quiet
machine:

    .venv/bin/python benchmarks/startup.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "a2aa9a3"  # main with the single cli.py that imported every extra at start
CURATE = "from codecurate.cli import main; main()"


def checkout(commit: str, folder: Path) -> Path:
    """The tree of `commit`, for PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True,
                             capture_output=True).stdout  # fmt: skip
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def environment(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code)}


def prepare_workdir(folder: Path, code: Path) -> Path:
    """`curate init`'s config over one small file, run through filters."""
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "add.py").write_text('def add(a, b):\n    """Add."""\n    return a + b\n')
    config = folder / "curate.toml"
    for args in (["init", str(config)], ["run", "-c", str(config), "--until", "filters"]):
        subprocess.run([sys.executable, "-c", CURATE, *args], env=environment(code), check=True,
                       capture_output=True, cwd=folder)  # fmt: skip
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs of each command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = checkout(BEFORE_COMMIT, Path(tmp) / "before")
        commands: dict[str, tuple[list[str], Path]] = {"python -c pass": (["-c", "pass"], ROOT)}
        for label, code in (("now", ROOT), ("before", before)):
            config = prepare_workdir(Path(tmp) / f"work-{label}", code)
            commands[f"curate --help ({label})"] = (["-c", CURATE, "--help"], code)
            commands[f"curate status ({label})"] = (["-c", CURATE, "status", "-c", str(config)],
                                                    code)  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, (argv, code) in commands.items():
                start = time.perf_counter()
                # from a neutral folder: `python -c` puts the working folder first on sys.path
                subprocess.run([sys.executable, *argv], env=environment(code), check=True,
                               capture_output=True, cwd=tmp)  # fmt: skip
                seconds[name].append(time.perf_counter() - start)
    floor = statistics.median(seconds["python -c pass"])
    print(f"{args.repeat} runs each, interleaved; median and fastest wall time")
    print(f"{'command':28} {'median':>8} {'fastest':>8} {'x pass':>7} {'x before':>9}")
    for name, times in seconds.items():
        median = statistics.median(times)
        old = name.replace("(now)", "(before)")
        versus = f"{median / statistics.median(seconds[old]):9.2f}" if "(now)" in name else ""
        print(f"{name:28} {median:8.3f} {min(times):8.3f} {median / floor:7.1f} {versus}")


if __name__ == "__main__":
    main()
