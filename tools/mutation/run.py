#!/usr/bin/env python3
"""
Mutation testing of the numeric and protocol modules with mutmut (``make mutation``).

Each module listed in ``tools/mutation/modules.toml`` is mutated in a work folder
``build/mutation/<run>/`` that holds a copy of the module's package, ``test/``, ``pytest.ini``
and the few repository files tests read (``config/``, ``training/configs/``), against only the
ROS-free tests named for it; the modules of a ``[groups]`` entry (one package, shared tests)
share one run, so its start-up (mutmut's statistics, clean and forced-fail runs) is paid once.
mutmut then runs, for each mutant, only those of the named tests that call the mutated
function (forked from one pytest process, so nothing is imported twice). Mutants listed in
``tools/mutation/equivalent.toml`` (they cannot change behaviour) are left out of the score:
``score = (killed + timeouts) / (mutants - equivalent)``.

Writes ``mutation.json`` (per module: mutants, killed, survived, no tests, timeouts,
equivalent, score, its run and the run's time, and the surviving mutants with their change)
and ``mutation.md`` (the table and the survivors). ``--modules`` runs some modules (with the
rest of their group) and merges them into an existing ``mutation.json``.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODULES_FILE = HERE / "modules.toml"
EQUIVALENT_FILE = HERE / "equivalent.toml"
# Repository files that tests read through paths relative to test/ (copied as they are).
TEST_RESOURCES = ["pytest.ini", "config", "training/configs"]
TIMEOUT_STATUSES = {"timeout", "segfault"}  # mutmut ends an overdue mutant with a signal


@dataclass
class Module:
    """One module to mutate and the pytest arguments that select its tests."""

    path: str  # relative to the repository root, e.g. finers_ros/geometry.py
    tests: list[str]
    skip: dict[str, str] = field(default_factory=dict)  # function name -> why not mutated
    run: str = ""  # the [groups] name it is mutated with, else its own dotted name

    @property
    def name(self) -> str:
        """Return the dotted module path (``finers_training.rewards``) used in mutant names."""
        return self.work_path.removesuffix(".py").replace("/", ".")

    @property
    def package(self) -> Path:
        """Top-level package folder holding the module (the highest with an __init__.py)."""
        top = None
        for folder in (ROOT / self.path).parents:
            if folder == ROOT:
                break
            if (folder / "__init__.py").exists():
                top = folder
        if top is None:
            raise SystemExit(f"{self.path}: not inside a package (no __init__.py above it)")
        return top

    @property
    def work_path(self) -> str:
        """Return the module's path inside the work folder (its package at the top)."""
        return str((ROOT / self.path).relative_to(self.package.parent))


@dataclass
class Outcome:
    """What one module's run found."""

    module: Module
    statuses: dict[str, str]
    changes: dict[str, str]
    seconds: float
    equivalent: dict[str, str] = field(default_factory=dict)
    stale_equivalent: list[str] = field(default_factory=list)
    changed: bool = False  # the module's code changed after the run: its figures are old


def load_modules() -> list[Module]:
    """
    Read modules.toml's ``[modules]``: ``"path/to/module.py" = [pytest arguments]``.

    Or ``{ tests = [...], skip = { function = "why" } }`` to leave functions unmutated.
    """
    data = tomllib.loads(MODULES_FILE.read_text())
    grouped = {path: name for name, paths in data.get("groups", {}).items() for path in paths}
    unknown = set(grouped) - set(data["modules"])
    if unknown:
        raise SystemExit(f"[groups] names modules not in [modules]: {sorted(unknown)}")
    modules = []
    for path, entry in data["modules"].items():
        if isinstance(entry, dict):
            module = Module(path, list(entry["tests"]), dict(entry.get("skip", {})))
        else:
            module = Module(path, list(entry))
        module.run = grouped.get(path, module.name)
        modules.append(module)
    return modules


def runs_of(modules: list[Module]) -> dict[str, list[Module]]:
    """Group modules by the mutmut run they share (one package per run), in file order."""
    runs: dict[str, list[Module]] = {}
    for module in modules:
        runs.setdefault(module.run, []).append(module)
    for name, members in runs.items():
        if len({m.package for m in members}) > 1:
            raise SystemExit(f"group {name}: its modules must be in one package")
    return runs


def mark_skipped(source: str, functions: dict[str, str]) -> str:
    """Return ``source`` with mutmut's ``no mutate block`` pragma on each named function."""
    lines = source.splitlines(keepends=True)
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in functions:
            header_end = node.body[0].lineno - 2  # the line before the body, 0-based
            while not lines[header_end].split("#")[0].rstrip().endswith(":"):
                header_end -= 1
            lines[header_end] = lines[header_end].rstrip("\n") + "  # pragma: no mutate block\n"
            found.add(node.name)
    missing = set(functions) - found
    if missing:
        raise SystemExit(f"skip names functions that do not exist: {sorted(missing)}")
    return "".join(lines)


def load_equivalent() -> dict[str, dict]:
    """Read equivalent.toml: mutant name -> {change, reason}."""
    if not EQUIVALENT_FILE.exists():
        return {}
    data = tomllib.loads(EQUIVALENT_FILE.read_text())
    return {entry["mutant"]: entry for entry in data.get("equivalent", [])}


def prepare(modules: list[Module], work: Path) -> None:
    """
    Fill the work folder: the package, test/, the test resources and mutmut's setup.cfg.

    The modules of one run are mutated together against the union of their tests (mutmut
    still runs only the tests that call a mutant's function).
    """
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    package = modules[0].package
    shutil.copytree(package, work / package.name, ignore=ignore)
    for module in modules:
        if module.skip:
            copied = work / module.work_path
            copied.write_text(mark_skipped(copied.read_text(), module.skip))
    copy_tests(modules, work)


def copy_tests(modules: list[Module], work: Path) -> None:
    """Copy test/ and the test resources into the work folder; write mutmut's setup.cfg."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    tests = list(dict.fromkeys(test for module in modules for test in module.tests))
    for resource in ["test", *TEST_RESOURCES]:
        source, target = ROOT / resource, work / resource
        if target.is_dir():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    package = modules[0].package
    lines = [
        "[mutmut]",
        f"source_paths={package.name}",
        "only_mutate=",
        *(f"    {module.work_path}" for module in modules),
        "pytest_add_cli_args_test_selection=",
        *(f"    {argument}" for argument in tests),
        "pytest_add_cli_args=",
        "    -p",
        "    no:cacheprovider",
        "also_copy=",
        *(f"    {resource}" for resource in TEST_RESOURCES),
    ]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")


def uncaught(modules: list[Module], work: Path, equivalent: dict[str, dict]) -> list[str]:
    """
    Return the last run's mutants of ``modules`` that no test caught (or it never reached).

    Listed equivalent mutants are left out: no test can catch them.
    """
    from mutmut.stats import status_by_exit_code

    names = []
    for module in modules:
        meta = json.loads((work / "mutants" / f"{module.work_path}.meta").read_text())
        for name, code in meta["exit_code_by_key"].items():
            status = status_by_exit_code[code]
            if status != "killed" and status not in TIMEOUT_STATUSES and name not in equivalent:
                names.append(name)
    return names


def changed_since(module: Module, work: Path) -> bool:
    """Return True when the module's code differs from the copy its last run mutated."""
    source = (ROOT / module.path).read_text()
    if module.skip:
        source = mark_skipped(source, module.skip)
    copied = work / module.work_path
    return not copied.exists() or copied.read_text() != source


def check_unchanged(modules: list[Module], work: Path) -> None:
    """Refuse ``--again`` when a module's code differs from the one its last run mutated."""
    for module in modules:
        if changed_since(module, work):
            raise SystemExit(f"{module.path} changed since its last run (or never ran): "
                             "run it without --again")


def run_mutmut(work: Path, jobs: int, log: Path, names: list[str] | None = None) -> None:
    """Run ``mutmut run`` in the work folder (only ``names`` when given); output to ``log``."""
    mutmut = Path(sys.executable).parent / "mutmut"
    environment = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                       CUDA_VISIBLE_DEVICES="", PYTHONDONTWRITEBYTECODE="1")
    with log.open("w") as output:
        run = subprocess.run([str(mutmut), "run", "--max-children", str(jobs), *(names or [])],
                             cwd=work, env=environment, stdout=output,
                             stderr=subprocess.STDOUT)
    if run.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"mutmut failed in {work} (exit {run.returncode}); last lines of "
                         f"{log}:\n" + "\n".join(tail))


def read_results(module: Module, work: Path,
                 listed: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """
    Return (mutant -> status, mutant -> its changed lines) from mutmut's files in ``work``.

    Changes are read for the mutants the tests did not catch and those in ``listed`` (the
    equivalent ones): reading one takes a parse of its function.
    """
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    meta = json.loads((work / "mutants" / f"{module.work_path}.meta").read_text())
    statuses = {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}
    changes = {}
    here = os.getcwd()
    os.chdir(work)
    try:
        for name, status in statuses.items():
            if name not in listed and (status == "killed" or status in TIMEOUT_STATUSES):
                continue
            diff = get_diff_for_mutant(name, path=module.work_path).splitlines()
            changed = [line for line in diff[2:] if line[:1] in "+-"]
            changes[name] = "\n".join(changed)
    finally:
        os.chdir(here)
    return statuses, changes


def mark_equivalent(outcome: Outcome, equivalent: dict[str, dict]) -> None:
    """Take the listed equivalent mutants out; one killed or whose change differs is stale."""
    for name, entry in equivalent.items():
        if not name.startswith(outcome.module.name + "."):
            continue
        caught = outcome.statuses.get(name) == "killed"  # a test notices it: not equivalent
        if not caught and outcome.changes.get(name) == entry["change"].strip("\n"):
            outcome.equivalent[name] = entry["reason"]
        else:
            outcome.stale_equivalent.append(name)


def summary(outcome: Outcome) -> dict:
    """Per-module counts, score and survivors for mutation.json."""
    counted = {name: status for name, status in outcome.statuses.items()
               if name not in outcome.equivalent}
    count = {status: sum(1 for s in counted.values() if s == status)
             for status in set(counted.values())}
    timeouts = sum(count.get(status, 0) for status in TIMEOUT_STATUSES)
    killed = count.get("killed", 0)
    scored = len(counted)
    survivors = [{"mutant": name, "status": status, "change": outcome.changes[name]}
                 for name, status in sorted(counted.items(), key=lambda item: _order(item[0]))
                 if status != "killed" and status not in TIMEOUT_STATUSES]
    return {
        "module": outcome.module.path,
        "tests": outcome.module.tests,
        "mutants": len(outcome.statuses),
        "killed": killed,
        "survived": count.get("survived", 0),
        "no_tests": count.get("no tests", 0),
        "timeouts": timeouts,
        "other": scored - killed - timeouts - count.get("survived", 0) - count.get("no tests", 0),
        "equivalent": len(outcome.equivalent),
        "score": round((killed + timeouts) / scored, 4) if scored else None,
        "run": outcome.module.run,
        "run_time_s": round(outcome.seconds, 1),
        "survivors": survivors,
        "stale_equivalent": sorted(outcome.stale_equivalent),
        "not_mutated": outcome.module.skip,
        "code_changed_since_run": outcome.changed,
    }


def _order(name: str) -> tuple[str, int]:
    """Sort mutants by function, then by mutant number."""
    function, _, number = name.rpartition("__mutmut_")
    return function, int(number) if number.isdigit() else 0


def write_report(results: dict, out: Path) -> None:
    """Write mutation.json and mutation.md (the table, then the survivors per module)."""
    (out / "mutation.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Mutation testing (make mutation)",
        "",
        f"mutmut {results['mutmut']}, {results['machine']}; score = (killed + timeouts) / "
        "(mutants - equivalent). Generated by tools/mutation/run.py from mutation.json.",
        "",
        *table(results),
        "",
        "## Survivors",
        "",
        "Mutants no test notices (`no tests`: no listed test calls the function).",
    ]
    for module in results["modules"]:
        if not (module["survivors"] or module["stale_equivalent"] or module["not_mutated"]):
            continue
        lines += ["", f"### {module['module']}", ""]
        for function, why in module["not_mutated"].items():
            lines.append(f"- `{function}` is not mutated: {why}")
        for survivor in module["survivors"]:
            change = survivor["change"].replace("\n", " / ")
            lines.append(f"- `{survivor['mutant']}` ({survivor['status']}): `{change}`")
        for name in module["stale_equivalent"]:
            lines.append(f"- `{name}`: listed as equivalent, but its change no longer matches")
    (out / "mutation.md").write_text("\n".join(lines) + "\n")


def table(results: dict) -> list[str]:
    """Return the Markdown table of mutation.json (also quoted in docs/mutation.md)."""
    lines = ["| module | mutants | killed | timeouts | survived | no tests | equivalent "
             "| score | run time |",
             "|---|---|---|---|---|---|---|---|---|"]
    sizes = {name: sum(1 for m in results["modules"] if m["run"] == name)
             for name in {m["run"] for m in results["modules"]}}
    shown = set()
    for m in results["modules"]:
        score = "-" if m["score"] is None else f"{100 * m['score']:.1f}%"
        if m["run"] in shown:
            when = f"in {m['run']}"
        else:
            shown.add(m["run"])
            when = f"{m['run_time_s'] / 60:.1f} min"
            if sizes[m["run"]] > 1:
                when += f" ({m['run']}: {sizes[m['run']]} modules)"
        if m.get("code_changed_since_run"):
            when += ", code changed since"
        lines.append(f"| `{m['module']}` | {m['mutants']} | {m['killed']} | {m['timeouts']} "
                     f"| {m['survived']} | {m['no_tests']} | {m['equivalent']} | {score} "
                     f"| {when} |")
    lines.append(f"| all | {sum(m['mutants'] for m in results['modules'])} | | | | | "
                 f"{sum(m['equivalent'] for m in results['modules'])} | "
                 f"{100 * results['score']:.1f}% | {results['run_time_s'] / 60:.1f} min |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the selected modules and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "mutation")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--modules", default="",
                        help="comma-separated module paths or dotted names (default: all)")
    parser.add_argument("--no-run", action="store_true",
                        help="report the results already in the work folders (no mutmut run)")
    parser.add_argument("--again", action="store_true",
                        help="rerun only the mutants the last run did not catch, against the "
                             "tests as they are now (the modules' code must be unchanged); "
                             "the run times add up")
    args = parser.parse_args(argv)
    modules = load_modules()
    wanted = [item for item in args.modules.split(",") if item]
    chosen = [m for m in modules if not wanted or m.path in wanted or m.name in wanted]
    unknown = set(wanted) - {m.path for m in chosen} - {m.name for m in chosen}
    if unknown:
        raise SystemExit(f"not in {MODULES_FILE.name}: {', '.join(sorted(unknown))}")
    equivalent = load_equivalent()
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "COLCON_IGNORE").touch()
    from importlib.metadata import version

    previous = {}
    if wanted and (args.out / "mutation.json").exists():
        old = json.loads((args.out / "mutation.json").read_text())
        previous = {m["module"]: m for m in old["modules"]}
        for m in previous.values():
            m.setdefault("run", m["module"])
    done = {}
    for name, members in runs_of(modules).items():
        if not any(m in chosen for m in members):
            continue
        work = args.work / name
        started = time.monotonic()
        timed = work / "run_time_s"
        earlier = 0.0
        if args.again:
            check_unchanged(members, work)
            earlier = float(timed.read_text()) if timed.exists() else 0.0
            again = uncaught(members, work, equivalent)
            print(f"{', '.join(m.path for m in members)}: {len(again)} uncaught mutants again",
                  flush=True)
            if again:
                copy_tests(members, work)
                run_mutmut(work, args.jobs, args.work / f"{name}.again.log", again)
        elif not args.no_run:
            tests = sorted({test for m in members for test in m.tests})
            print(f"{', '.join(m.path for m in members)}: mutating against {' '.join(tests)}",
                  flush=True)
            prepare(members, work)
            run_mutmut(work, args.jobs, args.work / f"{name}.log")
        outcomes = [Outcome(module, *read_results(module, work, set(equivalent)), 0.0)
                    for module in members]
        if not args.no_run:
            timed.write_text(f"{earlier + time.monotonic() - started:.1f}\n")
        seconds = float(timed.read_text()) if timed.exists() else 0.0
        for outcome in outcomes:
            outcome.seconds = seconds
            outcome.changed = changed_since(outcome.module, work)
            mark_equivalent(outcome, equivalent)
            done[outcome.module.path] = result = summary(outcome)
            print(f"    {outcome.module.path}: {result['mutants']} mutants, {result['killed']} "
                  f"killed, score {result['score']}", flush=True)
        print(f"    {seconds:.0f} s", flush=True)
    order = [m.path for m in modules]
    merged = {**previous, **done}
    listed = [merged[path] for path in order if path in merged]
    scored = sum(m["mutants"] - m["equivalent"] for m in listed)
    results = {
        "mutmut": version("mutmut"),
        "machine": f"{os.cpu_count()} CPU cores, {args.jobs} mutants at a time",
        "run_time_s": round(sum({m["run"]: m["run_time_s"] for m in listed}.values()), 1),
        "score": round(sum(m["killed"] + m["timeouts"] for m in listed) / scored, 4),
        "modules": listed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(results, args.out)
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
