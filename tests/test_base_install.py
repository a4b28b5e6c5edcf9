"""A base install (no extras) runs `curate --help`, `curate init` and a run through filters;
a stage whose extra is missing names the pip command. Each check runs `curate` in a fresh
interpreter where the extras cannot be imported."""

import os
import subprocess
import sys
from pathlib import Path

EXTRAS = ("argilla", "numpy", "fsspec", "datasketch", "presidio_analyzer", "presidio_anonymizer",
          "spacy", "torch", "transformers", "yaml")  # fmt: skip
# A None entry in sys.modules is how Python itself marks a module as absent: `import numpy`
# raises ModuleNotFoundError and importlib.util.find_spec("numpy") returns None, as on a base
# install (a meta-path finder cannot make find_spec say "not installed").
CURATE = f"""
import sys
for name in {EXTRAS!r}:
    sys.modules[name] = None
from codecurate.cli import main
sys.argv = ["curate", *sys.argv[1:]]
try:
    main()
finally:
    loaded = sorted(name for name in sys.modules if sys.modules[name] is not None)
    print("loaded:", " ".join(loaded), file=sys.stderr)
"""
ROOT = Path(__file__).resolve().parents[1]


def curate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-c", CURATE, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def loaded_modules(result: subprocess.CompletedProcess[str]) -> set[str]:
    line = next(line for line in result.stderr.splitlines() if line.startswith("loaded:"))
    return {name.split(".")[0] for name in line.split()[1:]}


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.startswith("loaded:")]


def config_for_a_tiny_dir(tmp_path: Path) -> Path:
    """`curate init`'s config as written: its dir source reads ./src."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "add.py").write_text('def add(a, b):\n    """Add."""\n    return a + b\n')
    assert curate("init", "curate.toml", cwd=tmp_path).returncode == 0
    config = tmp_path / "curate.toml"
    assert '[[ingest.sources]]\ntype = "dir"\npath = "src"\n' in config.read_text()
    return config


def test_help_without_extras_lists_every_group_and_imports_neither_polars_nor_pyarrow(tmp_path):
    result = curate("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for group in ("init", "run", "status", "pii", "dedup", "argilla", "datasets", "finetune"):
        assert f"  {group} " in result.stdout
    assert not {"polars", "pyarrow", "pydantic", "httpx"} & loaded_modules(result)


def test_init_without_extras_writes_the_config(tmp_path):
    result = curate("init", "my/curate.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[ingest.sources]" in result.stdout
    assert "[[ingest.sources]]" in (tmp_path / "my" / "curate.toml").read_text()


def test_run_through_filters_without_extras_writes_both_stages(tmp_path):
    config = config_for_a_tiny_dir(tmp_path)
    result = curate("run", "-c", str(config), "--until", "filters", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "work" / "01_ingest").is_dir()
    assert (tmp_path / "work" / "02_filters").is_dir()
    assert not (tmp_path / "work" / "03_pii").exists()
    assert "no plot of records per stage" in (tmp_path / "work/reports/run-report.html").read_text()
    status = curate("status", "-c", str(config), cwd=tmp_path)
    assert status.returncode == 0 and "02_filters" in status.stdout


def test_pii_stage_without_its_extra_is_one_line_naming_the_pip_command(tmp_path):
    config = config_for_a_tiny_dir(tmp_path)
    result = curate("run", "-c", str(config), "--until", "pii", cwd=tmp_path)
    assert result.returncode == 2
    assert errors(result) == [
        "error: The PII stage needs 'presidio-analyzer', which is not installed. "
        "Install it with: pip install 'codecurate[pii]'"
    ]
