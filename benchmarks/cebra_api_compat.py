"""cebra's own public-API tests, run against napari_cebra, as a compatibility report (issue 15).

The ``cebra==0.6.1`` source distribution (it holds cebra's ``tests/``) is fetched with pip into
``benchmarks/.cache/`` (git-ignored; nothing of it is committed here). Only its ``tests/`` folder
is unpacked, into a temporary folder, and each of

    test_sklearn_metrics.py  test_sklearn_decoder.py  test_grid_search.py  test_plot.py
    test_plotly.py

runs in a pytest subprocess of its own with a small plugin, written next to the tests, that puts
an import finder first on ``sys.meta_path``: ``cebra`` *is* the module ``napari_cebra`` and
``cebra.<x>`` *is* ``napari_cebra.<x>`` (the same module objects). A ``cebra.<x>`` that
napari_cebra lacks fails to import, which is a finding. The installed ``cebra`` package can not
come in: the plugin checks after every test, and at the end, that no module whose file lies in
its folder was imported (a leak fails the test and the whole run).

The report gives passed / failed / skipped / errors per file, a total, every failing test with
its node id, the line of the test file it failed on and the first line of its error, grouped by
that error, the ``cebra.*`` modules that were missing, and the slowest tests.

Usage::

    python benchmarks/cebra_api_compat.py                     # all five files
    python benchmarks/cebra_api_compat.py --files test_plot.py -k consistency --keep
    python benchmarks/cebra_api_compat.py --stub-missing      # see past missing modules
    python benchmarks/cebra_api_compat.py --reference         # the installed cebra, unmapped
    python benchmarks/cebra_api_compat.py --json benchmarks/results/cebra_api_compat.json

``--stub-missing`` turns a missing ``cebra.<x>`` into an empty module, so that a test file which
imports it at the top is still collected and its other tests run (names used from the stub then
fail with ``AttributeError``). ``--reference`` runs the same files against the installed cebra
itself, without the mapping, to tell failures of this machine from differences of napari_cebra.
The exit status is 0 when the tests ran, whatever their results, and 2 when they could not run
(no source distribution) or the installed cebra was imported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

CEBRA_VERSION = "0.6.1"
TEST_FILES = (
    "test_sklearn_metrics.py",
    "test_sklearn_decoder.py",
    "test_grid_search.py",
    "test_plot.py",
    "test_plotly.py",
)
CACHE = Path(__file__).resolve().parent / ".cache"
PLUGIN = "_cebra_api_compat_alias"
REPORT_ENV = "CEBRA_API_COMPAT_REPORT"  # also named in PLUGIN_SOURCE
MODE_ENV = "CEBRA_API_COMPAT_MODE"  # also named in PLUGIN_SOURCE
MODES = ("alias", "stub", "reference")
SLOW_S = 10.0

# cebra's own pytest settings (its pyproject.toml), without the --ignore of its package folders
PYTEST_INI = """\
[pytest]
markers =
    slow: marks tests as slow (deselect with '-m "not slow"')
    requires_dataset: tests that need access to a local dataset
    cpu
    cuda
filterwarnings =
    error:The given NumPy array is not writable.*PyTorch does not support non-writable tensors:UserWarning
"""

PLUGIN_SOURCE = '''\
"""pytest plugin written by benchmarks/cebra_api_compat.py: ``cebra`` is ``napari_cebra``.

``import cebra.a.b`` gives the module object ``napari_cebra.a.b``; a name that napari_cebra lacks
fails to import (or, with the stub option, gives an empty module). The installed cebra must never
be imported: every test and the session check that no module from its folder is loaded.
"""

import importlib
import importlib.abc
import importlib.util
import json
import os
import sys
import types

import pytest

_found = importlib.util.find_spec("cebra")  # located only; nothing of it is imported
REAL_CEBRA_DIR = os.path.dirname(_found.origin) if _found is not None and _found.origin else None
# "alias": cebra is napari_cebra; "stub": the same, with empty modules for missing names;
# "reference": no mapping at all, the installed cebra runs its own tests (for comparison)
MODE = os.environ.get("CEBRA_API_COMPAT_MODE", "alias")
ALIASED: set = set()
MISSING: set = set()


class _AliasLoader(importlib.abc.Loader):
    """Hands out an existing module object under the ``cebra`` name."""

    def __init__(self, module):
        self._module = module
        self._spec = getattr(module, "__spec__", None)

    def create_module(self, spec):
        return self._module

    def exec_module(self, module):
        # the import system has set ``__spec__`` to the alias's spec: give back napari_cebra's own
        if self._spec is not None:
            module.__spec__ = self._spec


class CebraAlias(importlib.abc.MetaPathFinder):
    """Maps ``cebra`` to ``napari_cebra`` and ``cebra.<x>`` to ``napari_cebra.<x>``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "cebra" and not fullname.startswith("cebra."):
            return None
        ours = "napari_" + fullname
        try:
            module = importlib.import_module(ours)
        except ModuleNotFoundError as error:
            if error.name != ours:
                raise
            MISSING.add(fullname)
            if MODE != "stub":
                raise ModuleNotFoundError(
                    f"No module named {fullname!r} (napari_cebra has no {ours!r})",
                    name=fullname,
                ) from None
            module = types.ModuleType(fullname, f"empty stand-in: napari_cebra has no {ours}")
            module.__path__ = []
        ALIASED.add(fullname)
        is_package = hasattr(module, "__path__")
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module), is_package=is_package)


if MODE != "reference":
    sys.meta_path.insert(0, CebraAlias())


def real_cebra_modules():
    """Names of loaded modules whose file lies in the installed cebra package."""
    if REAL_CEBRA_DIR is None:
        return []
    prefix = REAL_CEBRA_DIR + os.sep
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith(prefix)
    )


def _check():
    if MODE == "reference":
        return
    leaked = real_cebra_modules()
    if leaked:
        raise AssertionError(f"the installed cebra was imported: {leaked}")
    if not isinstance(sys.meta_path[0], CebraAlias):
        if not any(isinstance(finder, CebraAlias) for finder in sys.meta_path):
            raise AssertionError("the cebra -> napari_cebra finder was removed from sys.meta_path")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    _check()
    return result


def pytest_sessionfinish(session, exitstatus):
    report = {
        "aliased": sorted(ALIASED),
        "missing": sorted(MISSING),
        "real_cebra": [] if MODE == "reference" else real_cebra_modules(),
        "cebra_is_napari_cebra": sys.modules.get("cebra") is sys.modules.get("napari_cebra")
        if "cebra" in sys.modules and MODE != "reference"
        else None,
    }
    path = os.environ.get("CEBRA_API_COMPAT_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(report, handle)
'''


@dataclass
class Failure:
    """One failing (or erroring) test."""

    nodeid: str
    kind: str  # "failed", "error" or "timeout"
    cause: str  # first line of the error, normalised for grouping
    location: str = ""  # deepest line of the test file in the traceback


@dataclass
class FileResult:
    """Outcome of one cebra test file."""

    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0
    timed_out: bool = False
    failures: list[Failure] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    aliased: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    real_cebra: list[str] = field(default_factory=list)


def fetch_sdist(cache: Path) -> Path:
    """The ``cebra`` source distribution, downloaded with pip into ``cache`` once.

    Parameters
    ----------
    cache
        Folder that keeps the ``.tar.gz`` between runs.

    Returns
    -------
    Path
        The source distribution.
    """
    archive = cache / f"cebra-{CEBRA_VERSION}.tar.gz"
    if archive.is_file():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"cebra=={CEBRA_VERSION}",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--no-build-isolation",
        "--quiet",
        "-d",
        str(cache),
    ]
    subprocess.run(command, check=True)
    if not archive.is_file():
        raise FileNotFoundError(f"pip did not leave {archive.name} in {cache}")
    return archive


def extract_tests(archive: Path, destination: Path) -> Path:
    """Unpack only the ``tests/`` folder of the source distribution (never its ``cebra/``).

    Parameters
    ----------
    archive
        The source distribution.
    destination
        Folder to unpack into.

    Returns
    -------
    Path
        The root folder of the run, holding ``tests/``, ``pytest.ini`` and the alias plugin.
    """
    prefix = f"cebra-{CEBRA_VERSION}/tests/"
    root = destination / f"cebra-{CEBRA_VERSION}"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and m.isfile()]
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12
            tar.extractall(destination, members=members, filter="data")
        else:
            tar.extractall(destination, members=members)
    (root / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    (root / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    return root


def _first_line(message: str, text: str) -> str:
    """The first informative line of an error, without object addresses, cut at 300 characters."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines or lines[0] in ("collection failure", "failed on setup with"):
        # the message says nothing: take the exception lines pytest marks with "E"
        lines = [line[1:].strip() for line in (text or "").splitlines() if line.startswith("E ")]
        lines = [line for line in lines if line] or ["(no message)"]
    cause = lines[0]
    if cause.startswith(("AssertionError: Regex pattern did not match", "Regex pattern")):
        # the pattern and the text it was matched against tell the reason
        labels = ("Regex:", "Input:", "Expected regex:", "Actual message:")
        extra = [line for line in lines[1:] if line.startswith(labels)]
        cause = " ".join(["Regex pattern did not match.", *extra])
    cause = re.sub(r" at 0x[0-9a-f]+", "", cause)
    return cause if len(cause) <= 300 else cause[:297] + "..."


def _location(text: str, test_file: str) -> str:
    """The deepest ``test_file:line`` of a traceback."""
    found = re.findall(rf"{re.escape(test_file)}:(\d+)", text or "")
    return f"{test_file}:{found[-1]}" if found else ""


def parse_junit(path: Path, result: FileResult) -> None:
    """Count the outcomes of a junit-xml file into ``result``."""
    tree = ElementTree.parse(path)
    for case in tree.iter("testcase"):
        classname = case.get("classname", "")
        name = case.get("name", "")
        module = classname.split(".")[-1] if classname else Path(result.name).stem
        nodeid = f"{module}.py::{name}" if classname else f"{result.name} (collection)"
        result.durations[nodeid] = float(case.get("time") or 0.0)
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        if failure is not None or error is not None:
            element = failure if failure is not None else error
            kind = "failed" if failure is not None else "error"
            if kind == "failed":
                result.failed += 1
            else:
                result.errors += 1
            text = element.text or ""
            result.failures.append(
                Failure(
                    nodeid=nodeid,
                    kind=kind,
                    cause=_first_line(element.get("message", ""), text),
                    location=_location(text, result.name),
                )
            )
        elif skipped is not None:
            result.skipped += 1
            result.skips.append(f"{nodeid}: {skipped.get('message', '')}")
        else:
            result.passed += 1


_VERBOSE = re.compile(r"^(\S+\.py::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


def parse_verbose_log(log: str, result: FileResult, timeout: float) -> None:
    """Count outcomes from pytest's ``-v`` lines (no junit-xml when the file ran out of time)."""
    seen: set[str] = set()
    last_started = ""
    for line in log.splitlines():
        match = _VERBOSE.match(line)
        if match:
            nodeid, outcome = match.groups()
            seen.add(nodeid)
            if outcome in ("PASSED", "XFAIL", "XPASS"):
                result.passed += 1
            elif outcome == "SKIPPED":
                result.skipped += 1
            elif outcome == "FAILED":
                result.failed += 1
                result.failures.append(Failure(nodeid, "failed", "(see the log: --keep)"))
            else:
                result.errors += 1
                result.failures.append(Failure(nodeid, "error", "(see the log: --keep)"))
        elif re.match(r"^\S+\.py::\S+ ", line):
            last_started = line.split()[0]
    if last_started and last_started not in seen:
        result.errors += 1
        result.failures.append(Failure(last_started, "timeout", f"file ran past {timeout:.0f} s"))


def run_file(
    root: Path, test_file: str, timeout: float, keyword: str | None, mode: str = "alias"
) -> FileResult:
    """Run one cebra test file in a pytest process of its own, ``cebra`` mapped to napari_cebra.

    Parameters
    ----------
    root
        Folder made by :func:`extract_tests`.
    test_file
        File name inside ``tests/``.
    timeout
        Seconds before the pytest process (and its children) is ended.
    keyword
        pytest ``-k`` expression, or None.
    mode
        ``"alias"`` (``cebra`` is napari_cebra), ``"stub"`` (the same, with an empty module for a
        ``cebra.<x>`` that napari_cebra lacks) or ``"reference"`` (the installed cebra, unmapped).

    Returns
    -------
    FileResult
        Counts, failures, durations and the plugin's import record.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    result = FileResult(test_file)
    stem = Path(test_file).stem
    junit = root / f"{stem}.junit.xml"
    report = root / f"{stem}.imports.json"
    log_path = root / f"{stem}.log"
    command = [
        sys.executable,
        "-m",
        "pytest",
        test_file,
        "-c",
        str(root / "pytest.ini"),
        "--rootdir",
        str(root),
        "-p",
        PLUGIN,
        "-p",
        "no:cacheprovider",
        "-v",
        "-rfEs",
        f"--junitxml={junit}",
    ]
    if keyword:
        command += ["-k", keyword]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    env["MPLBACKEND"] = "Agg"
    # cebra's tests use no plugin fixtures: keep napari's, Qt's and Xvfb's plugins out of the run
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env[REPORT_ENV] = str(report)
    env[MODE_ENV] = mode
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        # the tests write files (grid search models) into the working folder: the tests folder
        process = subprocess.Popen(
            command,
            cwd=root / "tests",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            result.timed_out = True
            os.killpg(process.pid, signal.SIGKILL)  # the session of the pytest we started
            process.wait()
    result.seconds = time.perf_counter() - start
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    if junit.is_file() and not result.timed_out and process.returncode in (0, 1, 2, 5):
        # 0 all passed, 1 some failed, 2 interrupted by collection errors, 5 none selected
        parse_junit(junit, result)
    else:
        parse_verbose_log(log_text, result, timeout)
        if not result.timed_out:
            tail = "\n".join(log_text.splitlines()[-15:])
            result.errors += 1
            result.failures.append(
                Failure(test_file, "error", f"pytest ended with {process.returncode}: {tail}")
            )
    if report.is_file():
        imports = json.loads(report.read_text(encoding="utf-8"))
        result.aliased = imports["aliased"]
        result.missing = imports["missing"]
        result.real_cebra = imports["real_cebra"]
        if imports["cebra_is_napari_cebra"] is False:
            result.real_cebra.append("cebra (not napari_cebra)")
    return result


def print_report(results: list[FileResult], mode: str = "alias") -> None:
    """Print the per-file table, the failures grouped by cause, missing modules and slow tests."""
    target = {
        "alias": "napari_cebra (cebra -> napari_cebra)",
        "stub": "napari_cebra (cebra -> napari_cebra, missing modules stubbed)",
        "reference": "the installed cebra itself (reference run, no mapping)",
    }[mode]
    print(f"\ncebra {CEBRA_VERSION} public-API tests against {target}\n")
    header = f"{'file':<26}{'passed':>8}{'failed':>8}{'skipped':>9}{'errors':>8}{'time':>10}"
    print(header)
    print("-" * len(header))
    total = FileResult("total")
    for result in results:
        note = "  TIMEOUT" if result.timed_out else ""
        print(
            f"{result.name:<26}{result.passed:>8}{result.failed:>8}{result.skipped:>9}"
            f"{result.errors:>8}{result.seconds:>9.1f}s{note}"
        )
        for name in ("passed", "failed", "skipped", "errors", "seconds"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
    print("-" * len(header))
    print(
        f"{'total':<26}{total.passed:>8}{total.failed:>8}{total.skipped:>9}{total.errors:>8}"
        f"{total.seconds:>9.1f}s"
    )

    missing = sorted({name for result in results for name in result.missing})
    if missing:
        print("\ncebra modules that napari_cebra lacks: " + ", ".join(missing))
    leaked = sorted({name for result in results for name in result.real_cebra})
    if leaked:
        print("\nTHE INSTALLED CEBRA WAS IMPORTED (results invalid): " + ", ".join(leaked))

    groups: dict[str, list[Failure]] = defaultdict(list)
    for result in results:
        for failure in result.failures:
            groups[failure.cause].append(failure)
    if groups:
        count = sum(len(group) for group in groups.values())
        print(f"\nfailures and errors by cause ({count} tests, {len(groups)} causes)")
        for cause, group in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
            print(f"\n[{len(group)}] {cause}")
            for failure in group:
                where = f"  ({failure.location})" if failure.location else ""
                print(f"    {failure.kind:<7} {failure.nodeid}{where}")

    skips = [skip for result in results for skip in result.skips]
    if skips:
        print("\nskipped")
        for skip in skips:
            print(f"    {skip}")

    slow = sorted(
        ((seconds, nodeid) for r in results for nodeid, seconds in r.durations.items()),
        reverse=True,
    )
    slow = [item for item in slow if item[0] >= SLOW_S]
    if slow:
        print(f"\ntests that took {SLOW_S:.0f} s or more")
        for seconds, nodeid in slow:
            print(f"    {seconds:7.1f} s  {nodeid}")


def main(argv: list[str] | None = None) -> int:
    """Fetch cebra's tests, run them against napari_cebra and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--files", nargs="+", default=list(TEST_FILES), help="cebra test files to run"
    )
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per test file (default 600)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the unpacked tests, logs and junit-xml"
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--stub-missing",
        action="store_true",
        help="an empty module for each cebra.<x> that napari_cebra lacks, to see past it",
    )
    modes.add_argument(
        "--reference",
        action="store_true",
        help="run the tests against the installed cebra instead (which failures are the setup's)",
    )
    parser.add_argument("--cache-dir", type=Path, default=CACHE, help="where the sdist is kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    mode = "reference" if args.reference else "stub" if args.stub_missing else "alias"

    try:
        archive = fetch_sdist(args.cache_dir)
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        print(f"could not fetch cebra=={CEBRA_VERSION} with pip: {error}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="cebra_api_compat_"))
    try:
        root = extract_tests(archive, workdir)
        results = []
        for test_file in args.files:
            if not (root / "tests" / test_file).is_file():
                parser.error(f"no {test_file} in cebra {CEBRA_VERSION}'s tests")
            print(f"running {test_file} ...", flush=True)
            results.append(run_file(root, test_file, args.timeout, args.keyword, mode))
        print_report(results, mode)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            payload = {
                "cebra_version": CEBRA_VERSION,
                "mode": mode,
                "keyword": args.keyword,
                "files": [asdict(result) for result in results],
            }
            args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        if args.keep:
            print(f"\nunpacked tests, logs and junit-xml kept in {root}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 2 if any(result.real_cebra for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
