"""The hostile-input harness: run a reader on a crafted file in a fresh process.

Every reader of files the user did not write must refuse a hostile one
cleanly: a ``ValueError`` subclass naming the file, in bounded memory and
time, without reading outside the folder named (see "Files you did not
write" in the design notes). A test crafts the file in ``tmp_path``, then::

    result = run_isolated(
        f"read_idx({str(path)!r})",
        setup="from jepa_components.fashion_mnist import read_idx",
        memory_mib=128,
    )
    assert_refused(result, match="trailing data", file=path)

``setup`` runs first (imports: their memory is the baseline, not counted);
``code`` is the measured part. ``code`` may leave a JSON-able ``result``
variable, returned as ``IsolatedResult.value`` (e.g. a count to assert on).

How it measures (chosen because it is reliable here, on Linux CI):

- **Memory**: the peak resident set of the child, ``VmHWM`` of
  ``/proc/self/status``, reset after ``setup`` by writing ``5`` to
  ``/proc/self/clear_refs``; ``peak_mib`` is that peak minus the resident
  set after ``setup``. Not ``getrusage().ru_maxrss``: a child started by
  ``subprocess`` (vfork + exec) inherits the parent's high-water mark, so
  after a 400 MB pytest process it reads >= 400 MB before doing anything
  (measured). Where ``/proc`` is missing (macOS) ``ru_maxrss`` is the
  fallback, an upper bound.
- **Safety net**: ``RLIMIT_AS`` is set, after ``setup``, to the address
  space in use plus ``2 * memory_mib + 512`` MiB, so a runaway allocation
  fails (``MemoryError``, reported as not refused) instead of swapping the
  machine. It is generous on purpose: virtual reservations (thread stacks,
  malloc arenas, NumPy's lazily-touched ``np.empty``) are not the memory a
  test means; the measured peak is. BLAS threads are set to 1.
- **Time**: ``faulthandler.dump_traceback_later(timeout_s, exit=True)`` is
  armed before ``code``: a hang (e.g. ``open`` on a FIFO) dumps the stack
  of every thread to ``stderr`` and ends the child, and ``timed_out`` is
  set; the parent also kills the child ``timeout_s + 60`` s after start
  (interpreter start and imports). ``elapsed_s`` times ``code`` alone.

To add a case for another reader (checkpoints, configs, the CLI): write the
hostile file with plain bytes (never hold a bomb's inflated size in the
test process: compress a stream of zeros by chunks), call the public API in
``code`` with ``memory_mib`` a little above what the honest header declares,
and ``assert_refused`` with the file and a phrase of the expected message.
A test module that needs Keras must live under ``tests/backends`` (marked
and run per backend there); this folder's modules run in the core suite.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_KILL_SLACK_S = 60  # interpreter start + setup imports, on a busy 2-core machine

_CHILD = r"""
import faulthandler, json, os, resource, sys, time, traceback

job_path, out_path = sys.argv[1], sys.argv[2]
with open(job_path) as f:
    job = json.load(f)

def status_kib(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None

def maxrss_kib():
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value

namespace = {"__name__": "__hostile__"}
exec(compile("import numpy\n" + job["setup"], "<setup>", "exec"), namespace)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    precise = status_kib("VmHWM") is not None
except OSError:
    precise = False
base = status_kib("VmRSS") if precise else maxrss_kib()
vm_size = status_kib("VmSize")
if vm_size is not None:
    cap = (vm_size + (2 * job["memory_mib"] + 512) * 1024) * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ValueError, OSError):
        pass

out = {"error_type": None, "error_mro": [], "is_value_error": False, "message": "",
       "traceback": "", "value": None}
faulthandler.dump_traceback_later(job["timeout_s"], exit=True)
start = time.perf_counter()
try:
    exec(compile(job["code"], "<hostile case>", "exec"), namespace)
except BaseException as error:
    out.update(
        error_type=type(error).__name__,
        error_mro=[c.__name__ for c in type(error).__mro__],
        is_value_error=isinstance(error, ValueError),
        message=str(error),
        traceback="".join(traceback.format_exc())[-4000:],
    )
out["elapsed_s"] = time.perf_counter() - start
faulthandler.cancel_dump_traceback_later()
peak = status_kib("VmHWM") if precise else maxrss_kib()
out["peak_mib"] = max(0, peak - base) / 1024
value = namespace.get("result")
try:
    out["value"] = json.loads(json.dumps(value))
except (TypeError, ValueError):
    out["value"] = repr(value)
with open(out_path, "w") as f:
    json.dump(out, f)
"""


@dataclasses.dataclass
class IsolatedResult:
    """What :func:`run_isolated` saw.

    Attributes:
        error_type: the exception's class name, or None if ``code`` returned.
        error_mro: its class and base class names.
        is_value_error: the exception is a ``ValueError`` (subclass).
        message: ``str(exception)``.
        traceback: the end of the child's traceback (for failure messages).
        value: ``code``'s ``result`` variable (JSON round trip, or its repr).
        peak_mib: peak resident memory of ``code`` above the post-setup level.
        elapsed_s: seconds ``code`` ran (not counting start-up and setup).
        wall_s: seconds the whole child took, seen from the parent.
        timed_out: ``code`` ran past ``timeout_s`` (a hang).
        returncode: the child's exit status; ``stderr``: its error output.
        memory_mib, timeout_s: the limits it ran under.
    """

    error_type: str | None
    error_mro: list[str]
    is_value_error: bool
    message: str
    traceback: str
    value: Any
    peak_mib: float
    elapsed_s: float
    wall_s: float
    timed_out: bool
    returncode: int
    stderr: str
    memory_mib: float
    timeout_s: float


def run_isolated(
    code: str,
    *,
    setup: str = "",
    memory_mib: float = 1024,
    timeout_s: float = 30,
    env: dict[str, str] | None = None,
) -> IsolatedResult:
    """Run ``code`` in a fresh Python process under memory and time caps.

    Args:
        code: the measured snippet (e.g. one public-API call on a crafted
            file); it may set ``result`` to a JSON-able value.
        setup: run before ``code`` (imports); not measured or timed.
        memory_mib: the memory ``code`` is allowed (checked by
            :func:`assert_refused`; the ``RLIMIT_AS`` safety net is
            ``2 * memory_mib + 512`` MiB above the post-setup size).
        timeout_s: wall-clock seconds ``code`` may run before it counts
            as a hang.
        env: extra environment variables for the child.

    The child imports this checkout's ``jepa_components`` (the repository
    root is put first on ``PYTHONPATH``) and runs with one BLAS thread.
    """
    child_env = dict(os.environ)
    child_env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p
    )
    child_env.update(env or {})
    with tempfile.TemporaryDirectory(prefix="hostile-") as work:
        job_path, out_path = os.path.join(work, "job.json"), os.path.join(work, "out.json")
        with open(job_path, "w") as f:
            json.dump(
                {"code": code, "setup": setup, "memory_mib": memory_mib, "timeout_s": timeout_s},
                f,
            )
        start = time.perf_counter()
        killed = False
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, job_path, out_path],
                env=child_env,
                capture_output=True,
                text=True,
                timeout=timeout_s + _KILL_SLACK_S,
                check=False,
            )
            returncode, stderr = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as expired:
            killed, returncode = True, -9
            stderr = expired.stderr if isinstance(expired.stderr, str) else ""
        wall = time.perf_counter() - start
        out: dict[str, Any] = {}
        if os.path.exists(out_path):
            with open(out_path) as f:
                out = json.load(f)
    timed_out = killed or (not out and "Timeout (" in stderr)
    return IsolatedResult(
        error_type=out.get("error_type"),
        error_mro=out.get("error_mro", []),
        is_value_error=out.get("is_value_error", False),
        message=out.get("message", ""),
        traceback=out.get("traceback", ""),
        value=out.get("value"),
        peak_mib=out.get("peak_mib", float("nan")),
        elapsed_s=out.get("elapsed_s", wall),
        wall_s=wall,
        timed_out=timed_out,
        returncode=returncode,
        stderr=stderr,
        memory_mib=memory_mib,
        timeout_s=timeout_s,
    )


def _check_finished(result: IsolatedResult) -> None:
    if result.timed_out:
        pytest.fail(
            f"no answer within timeout_s={result.timeout_s} s: the reader hangs "
            f"(blocked on a FIFO? an endless loop?). Child stacks:\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    if result.returncode != 0 or result.peak_mib != result.peak_mib:  # NaN: no report
        pytest.fail(
            f"the child died (exit status {result.returncode}) without a report; "
            f"stderr:\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    if result.peak_mib > result.memory_mib:
        pytest.fail(
            f"used {result.peak_mib:.0f} MiB, more than memory_mib={result.memory_mib} "
            f"({result.error_type or 'no error'}: {result.message[:300]})",
            pytrace=False,
        )


def assert_refused(
    result: IsolatedResult,
    *,
    match: str | None = None,
    file: str | os.PathLike[str] | None = None,
    error: str | None = None,
) -> None:
    """Fail unless ``result`` is a clean refusal.

    A clean refusal: no hang, no crash, peak memory at most ``memory_mib``,
    and an exception that is a ``ValueError`` subclass (``error``: a class
    name that must be in its MRO, e.g. ``"BadImageError"``) whose message
    names ``file`` (its full path as given, ``os.fspath``) and matches the
    regular expression ``match`` (``re.search``).
    """
    _check_finished(result)
    found = f"{result.error_type}: {result.message}"
    if result.error_type is None:
        pytest.fail(
            f"accepted the hostile input (no error; result={result.value!r})", pytrace=False
        )
    if not result.is_value_error:
        pytest.fail(f"raised {found}, not a ValueError subclass\n{result.traceback}", pytrace=False)
    if error is not None and error not in result.error_mro:
        pytest.fail(f"expected a {error}, got {found}", pytrace=False)
    if file is not None and os.fspath(file) not in result.message:
        pytest.fail(f"the message does not name {os.fspath(file)}: {found}", pytrace=False)
    if match is not None and not re.search(match, result.message):
        pytest.fail(f"the message does not match {match!r}: {found}", pytrace=False)


def assert_accepted(result: IsolatedResult) -> Any:
    """Fail unless ``code`` ran to its end within the caps; return its ``result``."""
    _check_finished(result)
    if result.error_type is not None:
        pytest.fail(
            f"raised {result.error_type}: {result.message}\n{result.traceback}", pytrace=False
        )
    return result.value


def make_fifo(path: str | os.PathLike[str]) -> None:
    """Create a FIFO at ``path`` (skips the test where the OS has none)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("this OS has no FIFOs (os.mkfifo)")
    os.mkfifo(path)
