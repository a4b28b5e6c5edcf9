"""The sandbox's bootstrap: run as `python -I child.py` in a fresh scratch folder, with an
empty environment. It imports nothing of codecurate (it must run standalone).

Reads one task as JSON on stdin, applies the limits before any task code runs, and writes
one JSON result line to the stdout it was started with (the task's own prints go nowhere).
"""

import json
import os
import resource
import sys
import types

CLONE_NEWNET = 0x40000000
MB = 1024 * 1024
MAX_ROWS = 10_000  # rows a query may return to the comparison; more is a verdict, not data
# Process creation from Python: the RLIMIT_NPROC guard does not bind root, this does.
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "os.fork", "os.forkpty", "pty.spawn")  # fmt: skip
PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
               "os.chmod", "os.chown", "os.truncate", "os.utime", "shutil.rmtree")  # fmt: skip
# Every refusal, also those the task's own `except` swallowed: any one fails the verdict.
REFUSALS: list[str] = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Refused(Exception):
    """What the sandbox refused, as the verdict's reason."""


def apply_limits(limits: dict) -> None:
    """Set here, before the task is read, rather than in the parent's preexec_fn: the stage
    starts sandboxes from worker threads, where preexec_fn can deadlock the fork."""
    cpu = limits["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    memory = limits["memory_mb"] * MB
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    files = limits["file_mb"] * MB
    resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not dump GBs of core


def isolate_network(mode: str) -> None:
    """A network namespace of its own (only a down loopback) where the parent found it
    permitted; the audit hook refuses sockets in every mode."""
    if mode == "netns":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")


def audit_hook(scratch: str):
    """Refuse sockets, new processes, and writes or file changes outside `scratch`.

    An audit hook is not a security boundary (C extensions and ctypes go around it): the
    limits, the scratch cwd, the empty environment and the namespace are; this turns the
    common attempts into a clear reason.
    """

    def outside(path: object) -> bool:
        if isinstance(path, int):
            return False  # an already-open descriptor: its open was checked
        real = os.path.realpath(os.fsdecode(path))
        return not (real == scratch or real.startswith(scratch + os.sep))

    def refuse(reason: str) -> None:
        REFUSALS.append(reason)
        raise Refused(reason)

    def hook(event: str, args: tuple) -> None:
        if event.startswith("socket.") and event not in ("socket.gethostname",):
            refuse(f"refused_network: {event}")
        if event in PROCESS_EVENTS:
            refuse(f"refused_process: {event}")
        if event == "open" and args[0] is not None:
            path, mode, flags = args
            writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
            if writing and outside(path):
                refuse(f"refused_write: {os.fsdecode(path)}")
        elif event in PATH_EVENTS and args and outside(args[0]):
            refuse(f"refused_write: {event} {os.fsdecode(args[0])}")

    return hook


def run_python(code: str, run: bool, standalone: bool) -> dict:
    """Compile; when the code carries asserts or doctests, run it and its doctests.

    A file from a repository often cannot run outside its package (relative imports,
    registries that its package already filled): unless it is `standalone` (an answer),
    an error while its body runs leaves it unchecked (`ok` None), not failed.
    """
    try:
        compiled = compile(code, "<verified>", "exec")
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        return {"ok": False, "reason": f"syntax_error: {getattr(e, 'msg', e)} (line {line})"}
    if not run:
        return {"ok": True, "reason": None, "checks": ["compile"]}
    module = types.ModuleType("verified")
    sys.modules["verified"] = module
    try:
        exec(compiled, module.__dict__)
    except AssertionError as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return {"ok": False, "reason": f"assert_failed: line {tb.tb_lineno if tb else '?'}"}
    except Exception as e:
        if standalone or any(isinstance(a, Refused | MemoryError) for a in _chain(e)):
            raise
        return {"ok": None, "reason": f"unrunnable: {type(e).__name__}: {e}"}
    import doctest  # here: it imports pdb and much else, which most records never need

    tests = doctest.DocTestFinder(exclude_empty=True).find(module, "verified", module=module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test, out=lambda _text: None)
    failed, attempted = runner.summarize(verbose=False)
    if failed:
        return {"ok": False, "reason": f"doctest_failed: {failed} of {attempted}"}
    return {"ok": True, "reason": None, "checks": ["compile", "run", f"doctests:{attempted}"]}


def _plain(value: object) -> object:
    """A query value as JSON can carry it (dates, decimals, nodes as their text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return str(value)


def _rows(rows: list) -> dict:
    if len(rows) > MAX_ROWS:
        return {"ok": False, "reason": f"too_many_rows: more than {MAX_ROWS}"}
    return {"ok": True, "reason": None, "rows": [_plain(list(row)) for row in rows]}


def run_sql(query: str, fixture: str, engine: str) -> dict:
    """Load the fixture script into an in-memory database, run the query, return its rows."""
    if engine == "duckdb":
        import duckdb

        # one thread: the sandbox's CPU limit is per process, and threads count as processes
        db = duckdb.connect(":memory:", config={"threads": 1, "enable_external_access": False})
        load, execute = db.execute, db.execute
    else:
        import sqlite3

        db = sqlite3.connect(":memory:")
        load, execute = db.executescript, db.execute
    try:
        load(fixture)
    except Exception as e:
        return {"ok": False, "reason": f"fixture_error: {type(e).__name__}: {e}"}
    try:
        cursor = execute(query)
        rows = cursor.fetchmany(MAX_ROWS + 1) if cursor.description else []
    except Exception as e:
        return {"ok": False, "reason": f"sql_error: {type(e).__name__}: {e}"}
    return _rows(rows)


def run_cypher(query: str, fixture: str) -> dict:
    """Load the fixture (DDL and CREATE statements) into a graph in the scratch folder, run
    the query, return its rows."""
    import ladybug

    # Small fixed pools: the graph database otherwise reserves most of RAM and terabytes of
    # address space up front, which the memory limit (rightly) refuses.
    db = ladybug.Database("graph", buffer_pool_size=32 * MB, max_db_size=1 << 28,
                          max_num_threads=1)  # fmt: skip
    conn = ladybug.Connection(db, num_threads=1)
    try:
        conn.execute(fixture)
    except Exception as e:
        return {"ok": False, "reason": f"fixture_error: {type(e).__name__}: {e}"}
    try:
        result = conn.execute(query)
        if isinstance(result, list):  # several statements: the last one's rows
            result = result[-1]
        rows = []
        while result.has_next() and len(rows) <= MAX_ROWS:
            rows.append(result.get_next())
    except Exception as e:
        return {"ok": False, "reason": f"cypher_error: {type(e).__name__}: {e}"}
    return _rows(rows)


def engine_module(task: dict) -> str | None:
    """The database module a query task needs."""
    if task["kind"] == "cypher":
        return "ladybug"
    if task["kind"] == "sql":
        return "duckdb" if task["engine"] == "duckdb" else "sqlite3"
    return None


def run_task(task: dict) -> dict:
    kind = task["kind"]
    if kind == "python":
        return run_python(task["code"], task["run"], task["standalone"])
    if kind == "sql":
        return run_sql(task["code"], task["fixture"], task["engine"])
    if kind == "cypher":
        return run_cypher(task["code"], task["fixture"])
    return {"ok": False, "reason": f"sandbox_error: unknown task kind {kind!r}"}


def main() -> None:
    task = json.loads(sys.stdin.read())
    result_fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # the task's prints must not corrupt the result line
    os.dup2(null, 2)
    apply_limits(task["limits"])
    isolate_network(task["network"])
    engine = engine_module(task)
    if engine is not None:
        __import__(engine)  # before the hook: an import only reads, and it is not the task
    sys.addaudithook(audit_hook(os.path.realpath(os.getcwd())))
    try:
        result = run_task(task)
    except Refused as e:
        result = {"ok": False, "reason": str(e)}
    except MemoryError:
        result = {"ok": False, "reason": "memory"}
    except RecursionError:
        result = {"ok": False, "reason": "python_error: RecursionError"}
    except BaseException as e:  # the task's own failure, reported, never raised
        refused = next((a for a in _chain(e) if isinstance(a, Refused)), None)
        if refused is not None:
            result = {"ok": False, "reason": str(refused)}
        elif any(isinstance(a, MemoryError) for a in _chain(e)):
            result = {"ok": False, "reason": "memory"}
        else:
            result = {"ok": False, "reason": f"python_error: {type(e).__name__}: {e}"}
    if REFUSALS:
        result = {"ok": False, "reason": REFUSALS[0]}
    os.write(result_fd, (json.dumps(result) + "\n").encode())
    os._exit(0)  # skip interpreter teardown: the task may have left threads or handlers


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes/contexts (code that wraps a refusal still says why)."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


if __name__ == "__main__":
    main()
