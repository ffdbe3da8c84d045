"""Grade students' notebooks: run each in a fresh kernel, re-check every exercise on hidden inputs, write a CSV.

`python -m llmfs.course grade SUBMISSION.ipynb... --out grades.csv`. Each submission runs in a copy inside
its own temporary folder, cell by cell, within a time limit; then, in the same kernel, every exercise of its
chapters is checked again by `llmfs.exercises.verdict` with a seed the notebooks' check cells do not use.
A submission that loops, raises, deletes files in its folder or kills its kernel gets that recorded; it does
not stop the others. This is not a sandbox: run submissions you do not trust in a container.
"""

import csv
import json
import math
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmfs import exercises
from llmfs.course import CHECK_CALL

STATUSES = ("passed", "failed", "not implemented", "cell error", "missing")
CSV_COLUMNS = ("submission", "exercise", "status", "points", "max_points", "message")
TOTAL = "TOTAL"
RESULT_MARKER = "LLMFS-GRADE "
PROBE_TIMEOUT_S = 15  # after a timeout: how long an interrupted kernel gets to stop
CHAPTER_PREFIX = re.compile(r"ch\d{2}|app[A-Z]")  # chapter NN, or appendix X


@dataclass
class ExerciseResult:
    """The grade of one exercise of one submission."""

    exercise_id: str
    status: str
    message: str
    points: int
    max_points: int


@dataclass
class CellRun:
    """What happened to one cell: state is "ok", "error", "timeout", "skipped" or "dead"."""

    state: str
    message: str = ""


@dataclass
class Submission:
    """The grades of one submission, and notes on its run (time limit reached, kernel died)."""

    path: Path
    results: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(result.points for result in self.results)

    @property
    def max_points(self) -> int:
        return sum(result.max_points for result in self.results)


def function_definition(name: str) -> re.Pattern:
    """A pattern matching the line that defines function `name`."""
    return re.compile(rf"^\s*def\s+{re.escape(name)}\s*\(", flags=re.MULTILINE)


def expected_exercises(notebook, chapters: list[str] | None = None) -> list[tuple[str, str, int | None]]:
    """Return (exercise id, function name, index of its check cell or None) for every exercise to grade.

    The exercises are every registered one of `chapters` (e.g. ["ch02"]), by default of the chapters whose
    exercises the notebook checks; the function name is the one its check cell passes, or, when the student
    removed that cell, the reference solution's name.
    """
    checked = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            for exercise_id, name in CHECK_CALL.findall(cell.source):
                checked.setdefault(exercise_id, (name, index))
    registered = exercises.ids()
    if chapters is None:
        chapters = sorted({exercise_id.split(".")[0] for exercise_id in checked if exercise_id in registered})
    wanted = [exercise_id for exercise_id in registered if exercise_id.split(".")[0] in chapters]
    wanted.sort(key=lambda exercise_id: checked.get(exercise_id, ("", math.inf))[1])
    return [
        (exercise_id, *checked.get(exercise_id, (exercises.get(exercise_id).reference.__name__, None)))
        for exercise_id in wanted
    ]


def grading_cell_source(exercise_id: str, name: str, seed: int) -> str:
    """The code that re-checks one exercise in the submission's kernel and prints its verdict as JSON."""
    return f"""\
import json as _grading_json
import llmfs.exercises as _grading_exercises
_grading_fn = globals().get({name!r})
if callable(_grading_fn):
    _grading_verdict = _grading_exercises.verdict({exercise_id!r}, _grading_fn, seed={seed})
    _grading_result = {{"status": _grading_verdict.status, "message": _grading_verdict.message}}
else:
    _grading_result = {{"status": "missing", "message": "no function named {name} is defined"}}
print({RESULT_MARKER!r} + _grading_json.dumps(_grading_result))"""


def error_of(cell) -> str | None:
    """Return "Name: value" of the first error output of an executed cell, or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    return None


def grading_result_of(cell) -> dict | None:
    """Return the verdict a grading cell printed, or None if it printed none."""
    printed = "".join(
        output.get("text", "") for output in cell.get("outputs", []) if output.get("output_type") == "stream"
    )
    for line in printed.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    return None


@dataclass
class Limits:
    """Time limits, in seconds: a submission's own cells together, one of its cells, one hidden-input check."""

    time_limit: float = 900
    cell_timeout: float = 300
    check_timeout: float = 60


def run_cells(notebook, workdir: Path, limits: Limits, first_grading_cell: int, kernel_name: str,
              skip_after_timeout: dict[int, int]) -> tuple[dict[int, CellRun], list[str]]:
    """Execute the notebook's code cells in order in a fresh kernel started in `workdir`; store their outputs.

    The submission's own cells share `limits.time_limit`, each at most `limits.cell_timeout`; each grading
    cell (from `first_grading_cell` on) gets `limits.check_timeout` of its own, and is skipped when the cell
    `skip_after_timeout[its index]` (its exercise's check cell) timed out. Returns each code cell's run, and notes.
    """
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.util import run_sync

    runs: dict[int, CellRun] = {}
    notes: list[str] = []
    client = NotebookClient(
        notebook, kernel_name=kernel_name, shutdown_kernel="immediate", resources={"metadata": {"path": str(workdir)}}
    )
    deadline = time.monotonic() + limits.time_limit
    code_cells = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    try:
        with client.setup_kernel():  # nbclient starts the kernel in workdir, and stops it
            for position, index in enumerate(code_cells):
                if index >= first_grading_cell:
                    timeout = limits.check_timeout
                    check_index = skip_after_timeout.get(index)
                    if check_index is not None and runs.get(check_index, CellRun("ok")).state == "timeout":
                        runs[index] = CellRun("skipped", "not run: its check cell timed out")
                        continue
                else:
                    timeout = min(limits.cell_timeout, deadline - time.monotonic())
                if timeout <= 0:
                    if not any("time limit" in note for note in notes):
                        notes.append(f"time limit of {limits.time_limit:g} s reached: cells from {index} on not run")
                    runs[index] = CellRun("skipped", f"not run: the time limit of {limits.time_limit:g} s was reached")
                    continue
                runs[index] = run_sync(_run_cell)(client, notebook.cells[index], timeout)
                if runs[index].state == "timeout" and index < first_grading_cell:
                    notes.append(f"cell {index} {runs[index].message}")
                if runs[index].state in ("dead", "stuck"):
                    what = "died" if runs[index].state == "dead" else "was stuck"
                    notes.append(f"the kernel {what} in cell {index}")
                    for later in code_cells[position + 1:]:
                        runs[later] = CellRun("dead", f"not run: the kernel {what} in cell {index}")
                    if runs[index].state == "stuck":
                        runs[index] = CellRun("timeout", runs[index].message)
                    break
    except NoSuchKernel:
        raise SystemExit(f"no Jupyter kernel named {kernel_name!r}: install ipykernel, or pass --kernel") from None
    except Exception as err:  # the kernel's shutdown can fail after it died; what ran is recorded already
        if not runs:
            notes.append(f"the notebook could not be run: {type(err).__name__}: {err}")
        for index in code_cells:
            runs.setdefault(index, CellRun("dead", f"not run: {type(err).__name__}: {err}"))
    return runs, notes


async def _run_cell(client, cell, timeout: float) -> CellRun:
    """Run one cell in the client's kernel, collecting its outputs into the cell; interrupt it on timeout.

    The only reader of the kernel's output channel is this loop, one cell at a time, so late messages of an
    interrupted cell are dropped here instead of being mistaken for the next cell's.
    """
    import nbformat

    msg_id = client.kc.execute(cell.source, store_history=True, allow_stdin=False, stop_on_error=False)
    cell.outputs = []
    finished = await _collect_outputs(client, msg_id, cell.outputs, timeout)
    if finished is None:
        return CellRun("dead", "the kernel died")
    if not finished:
        message = f"timed out after {timeout:.0f} s"
        await client.km.interrupt_kernel()
        interrupted = await _collect_outputs(client, msg_id, [], PROBE_TIMEOUT_S)
        if interrupted is None:
            return CellRun("dead", f"{message}, then the kernel died")
        return CellRun("timeout", message) if interrupted else CellRun("stuck", f"{message}, and ignored an interrupt")
    error = error_of(cell)
    cell.outputs = [nbformat.from_dict(output) for output in cell.outputs]
    return CellRun("error", error) if error else CellRun("ok")


async def _collect_outputs(client, msg_id: str, outputs: list, timeout: float) -> bool | None:
    """Append the outputs of request `msg_id` until the kernel is idle again: True, or False on timeout, None if dead."""
    from queue import Empty

    import nbformat

    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = await client.kc.get_iopub_msg(timeout=min(remaining, 1.0))
        except Empty:
            if not await client.km.is_alive():
                return None
            continue
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "status" and content.get("execution_state") == "idle":
            return True
        if kind == "clear_output":
            outputs.clear()
        elif kind in ("stream", "display_data", "execute_result", "error"):
            outputs.append(nbformat.v4.output_from_msg(message))
    return False


def grade_notebook(path: Path, seed: int = exercises.GRADING_SEED, limits: Limits = Limits(),
                   chapters: list[str] | None = None, kernel_name: str = "python3") -> Submission:
    """Run one submission in a temporary copy of itself and grade every exercise of its chapters."""
    import nbformat

    submission = Submission(path)
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON, not a notebook: record it and go on with the others
        submission.notes.append(f"not a readable notebook: {type(err).__name__}: {err}")
        return submission
    expected = expected_exercises(notebook, chapters)
    if not expected:
        submission.notes.append("no exercise to grade: no `llmfs.exercises.check(...)` cell of a known exercise")
        return submission

    first_grading_cell = len(notebook.cells)
    skip_after_timeout = {}
    for exercise_id, name, check_index in expected:
        if check_index is not None:
            skip_after_timeout[len(notebook.cells)] = check_index
        notebook.cells.append(nbformat.v4.new_code_cell(grading_cell_source(exercise_id, name, seed)))
    workdir = Path(tempfile.mkdtemp(prefix="llmfs-grade-"))
    try:
        shutil.copy(path, workdir / path.name)
        runs, notes = run_cells(notebook, workdir, limits, first_grading_cell, kernel_name, skip_after_timeout)
        submission.notes.extend(notes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for offset, (exercise_id, name, check_index) in enumerate(expected):
        max_points = exercises.get(exercise_id).points
        status, message = _exercise_outcome(
            notebook, runs, name, check_index, first_grading_cell, first_grading_cell + offset
        )
        points = max_points if status == "passed" else 0
        submission.results.append(ExerciseResult(exercise_id, status, message, points, max_points))
    return submission


def _exercise_outcome(notebook, runs: dict[int, CellRun], name: str, check_index: int | None,
                      first_grading_cell: int, grading_index: int) -> tuple[str, str]:
    """Decide an exercise's status and message from what happened to its cells."""
    search_end = check_index if check_index is not None else first_grading_cell
    defining = [
        index for index in range(search_end)
        if notebook.cells[index].cell_type == "code" and function_definition(name).search(notebook.cells[index].source)
    ]
    if defining:
        run = runs.get(defining[-1], CellRun("skipped", "not run"))
        if run.state != "ok":
            return "cell error", f"the cell defining {name} (cell {defining[-1]}): {run.message}"
    if check_index is not None and runs.get(check_index, CellRun("ok")).state == "timeout":
        return "cell error", f"its check cell (cell {check_index}) {runs[check_index].message}"
    run = runs.get(grading_index, CellRun("skipped", "not run"))
    if run.state == "timeout":
        return "cell error", f"the check on hidden inputs {run.message}"
    if run.state != "ok":
        return "cell error", f"the check on hidden inputs: {run.message}"
    result = grading_result_of(notebook.cells[grading_index])
    if result is None or result.get("status") not in STATUSES:
        return "cell error", "the check on hidden inputs printed no verdict"
    return result["status"], result["message"]


def write_csv(submissions: list[Submission], out) -> None:
    """Write one row per exercise of each submission, then the submission's TOTAL row."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for submission in submissions:
        for result in submission.results:
            writer.writerow(
                (submission.path.name, result.exercise_id, result.status, result.points, result.max_points,
                 result.message)
            )
        passed = sum(result.status == "passed" for result in submission.results)
        writer.writerow(
            (submission.path.name, TOTAL, f"{passed} of {len(submission.results)} passed", submission.points,
             submission.max_points, "; ".join(submission.notes))
        )


def add_arguments(parser) -> None:
    """Declare the `grade` command's arguments."""
    parser.add_argument("submissions", nargs="+", type=Path, help="the students' notebooks (.ipynb)")
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    parser.add_argument(
        "--seed", type=int, default=exercises.GRADING_SEED,
        help=f"seed of the hidden inputs (default {exercises.GRADING_SEED}; the notebooks use "
        f"{exercises.SEED}); pick your own and keep it to yourself",
    )
    defaults = Limits()
    parser.add_argument(
        "--time-limit", type=float, default=defaults.time_limit, help="seconds for all of a submission's own cells"
    )
    parser.add_argument(
        "--cell-timeout", type=float, default=defaults.cell_timeout, help="seconds for one of its cells"
    )
    parser.add_argument(
        "--check-timeout", type=float, default=defaults.check_timeout, help="seconds for each hidden-input check"
    )
    parser.add_argument(
        "--chapters", nargs="+", metavar="chNN",
        help="grade every exercise of these chapters (default: those the submission checks)",
    )
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel to run the submissions in")


def main(args) -> None:
    """Grade every submission named on the command line and write the CSV."""
    for path in args.submissions:
        if path.suffix != ".ipynb" or not path.is_file():
            raise SystemExit(f"not a notebook file: {path}")
    if args.seed == exercises.SEED:
        raise SystemExit(f"--seed {args.seed} is the seed of the notebooks' own checks: choose another")
    for chapter in args.chapters or []:
        if not CHAPTER_PREFIX.fullmatch(chapter):
            raise SystemExit(f"--chapters takes chapter prefixes such as ch02 (or appA), not {chapter!r}")
    limits = Limits(args.time_limit, args.cell_timeout, args.check_timeout)
    if min(limits.time_limit, limits.cell_timeout, limits.check_timeout) <= 0:
        raise SystemExit("--time-limit, --cell-timeout and --check-timeout must be positive")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    submissions = []
    for path in args.submissions:
        start = time.perf_counter()
        submission = grade_notebook(path, args.seed, limits, args.chapters, args.kernel)
        submissions.append(submission)
        notes = f" ({'; '.join(submission.notes)})" if submission.notes else ""
        print(
            f"{path.name}: {submission.points} of {submission.max_points} points in "
            f"{time.perf_counter() - start:.0f} s{notes}",
            file=sys.stderr, flush=True,
        )
    with args.out.open("w", encoding="utf-8", newline="") as out:
        write_csv(submissions, out)
    print(f"grades of {len(submissions)} submission(s) written to {args.out}")
