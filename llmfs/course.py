"""Commands for the course's notebooks: refresh outputs, sync cells, write the student edition, grade submissions.

`python -m llmfs.course --help` lists them. `grade` works wherever llmfs is installed; the others change the
chapters of a source checkout (`git clone` the course, then `pip install -e ".[course]"`).
nbformat and nbclient are imported inside the commands: they are course tools (the `course` extra), not
runtime dependencies of llmfs.
"""

import argparse
import re
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAPTERS_DIR = REPO_ROOT / "chapters"
STUDENT_DIR = REPO_ROOT / "student"
CELL_TIMEOUT_S = 600
DISTRIBUTION = "llmfs-course"  # the name on pip's side; `llmfs` on PyPI is an unrelated project

SETUP_CELL_TEMPLATE = """\
# Setup: in Colab this installs llmfs; locally and in CI it is already installed.
import importlib.util
if importlib.util.find_spec("llmfs") is None:
    %pip install -q "{distribution} @ git+{repository_url}"
import llmfs
DEVICE = llmfs.pick_device()"""

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB_MESSAGE = "Replace this line with your solution, then run the check cell below."
# First line of a solution cell: Colab shows it as the title of a collapsed form (cellView "form").
SOLUTION_TITLE = "#@title Solution (double-click to show the code)"
SOLUTION_TITLE_LINE = re.compile(r"#@title\b[^\n]*\n?")
# A markdown cell that only opens or closes a solution dropdown of the book (sphinx-exercise).
SOLUTION_FENCE = re.compile(r"\s*```\{solution-(start|end)\}[^`]*```\s*")
GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`(?P<name>\w+)(?::(?P<format>[^`]*))?`")
CHECK_CALL = re.compile(r"""llmfs\.exercises\.check\(\s*["']([^"']+)["']\s*,\s*(\w+)\s*\)""")


class NotACheckoutError(SystemExit):
    """Raised by a command that changes the chapters when llmfs is not running from a source checkout."""


def require_checkout(command: str) -> None:
    """Exit with a clear message unless llmfs runs from a source checkout of the course (chapters, _config.yml)."""
    if not ((REPO_ROOT / "_config.yml").is_file() and CHAPTERS_DIR.is_dir()):
        raise NotACheckoutError(
            f"`python -m llmfs.course {command}` works on the chapters of a source checkout of the course, but "
            f"this llmfs is installed at {REPO_ROOT / 'llmfs'} without them. Clone the course repository and "
            f'run `pip install -e ".[course]"` in it, then run the command there. '
            f"(`python -m llmfs.course grade` works from any installation.)"
        )


def chapter_notebooks() -> list[Path]:
    """Return the chapter notebooks of the checkout, sorted by file name."""
    return sorted(CHAPTERS_DIR.glob("*.ipynb"))


def book_config() -> dict:
    """Return the book's _config.yml as a dict."""
    import yaml

    return yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))


def repository_url() -> str:
    """Return the repository URL, written once in the book's _config.yml (repository.url)."""
    return book_config()["repository"]["url"]


def setup_cell_source() -> str:
    """Return the setup cell every chapter starts with, for this repository's URL."""
    return SETUP_CELL_TEMPLATE.format(distribution=DISTRIBUTION, repository_url=repository_url())


def colab_url(path: Path) -> str:
    """Return the URL that opens the checkout's notebook `path` in Colab, from the repository on GitHub."""
    repository = book_config()["repository"]
    slug = re.sub(r"^https://github\.com/|\.git$|/$", "", repository["url"])
    relative = path.resolve().relative_to(REPO_ROOT).as_posix()
    return f"https://colab.research.google.com/github/{slug}/blob/{repository.get('branch', 'main')}/{relative}"


def numbered_chapters() -> list[str]:
    """Return the files of the numbered part of _toc.yml (e.g. `chapters/kv_cache`), in chapter order."""
    import yaml

    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [entry["file"] for part in toc.get("parts", []) if part.get("numbered") for entry in part["chapters"]]


def appendix_chapters() -> list[str]:
    """Return the files of the "Appendix" part of _toc.yml, in order: appendix A, B, ..."""
    import yaml

    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [entry["file"] for part in toc.get("parts", []) if part.get("caption") == "Appendix"
            for entry in part["chapters"]]


def chapter_label(toc_file: str) -> str:
    """The number of a chapter of _toc.yml ("3"), or its appendix letter ("A"); ValueError if it is neither."""
    chapters, appendices = numbered_chapters(), appendix_chapters()
    if toc_file in chapters:
        return str(chapters.index(toc_file) + 1)
    if toc_file in appendices:
        return chr(ord("A") + appendices.index(toc_file))
    raise ValueError(f"{toc_file} is in neither the Chapters nor the Appendix part of _toc.yml")


def exercise_prefix(toc_file: str) -> str:
    """The exercise-id prefix of a chapter of _toc.yml: chNN for chapter NN, appX for appendix X."""
    label = chapter_label(toc_file)
    return f"ch{int(label):02d}" if label.isdigit() else f"app{label}"


def chapter_title(notebook) -> str:
    """Return the text of the first `# heading` of a notebook, or '' if it has none."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^# (.+)$", cell.source, flags=re.MULTILINE)
            if match:
                return match.group(1).strip()
    return ""


def first_code_cell(notebook):
    """Return the first code cell of an nbformat notebook, or None if it has none."""
    return next((cell for cell in notebook.cells if cell.cell_type == "code"), None)


def stub_solutions(source: str) -> str:
    """Replace each `### BEGIN SOLUTION` ... `### END SOLUTION` block with a NotImplementedError stub.

    The stub keeps the indentation of the BEGIN marker; unbalanced markers raise ValueError.
    """
    out, indent = [], None
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if indent is not None:
                raise ValueError(f"line {number}: {BEGIN_SOLUTION} inside another solution block")
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({STUB_MESSAGE!r})"]
        elif stripped == END_SOLUTION:
            if indent is None:
                raise ValueError(f"line {number}: {END_SOLUTION} without a {BEGIN_SOLUTION}")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{BEGIN_SOLUTION} without an {END_SOLUTION}")
    return "\n".join(out)


def is_solution_cell(cell) -> bool:
    """Whether a cell is a code cell holding a reference solution (a `### BEGIN SOLUTION` marker)."""
    return cell.cell_type == "code" and any(line.strip() == BEGIN_SOLUTION for line in cell.source.splitlines())


def collapse_solution(cell) -> bool:
    """Collapse a solution cell in Jupyter and Colab: hidden-source metadata and a Colab form title.

    Returns whether the cell changed. The book strips the title and marker lines (book/_ext/llmfs_book.py).
    """
    body = SOLUTION_TITLE_LINE.sub("", cell.source, count=1) if cell.source.startswith("#@title") else cell.source
    source = SOLUTION_TITLE + "\n" + body
    metadata = cell.metadata
    changed = source != cell.source or metadata.get("cellView") != "form"
    changed = changed or metadata.get("jupyter", {}).get("source_hidden") is not True
    cell.source = source
    metadata["cellView"] = "form"  # Colab: show the title, hide the code until double-clicked
    metadata.setdefault("jupyter", {})["source_hidden"] = True  # JupyterLab / Notebook 7: input collapsed
    return changed


def uncollapse_solution(cell) -> None:
    """Undo `collapse_solution`: the title line and the hiding metadata go."""
    if cell.source.startswith("#@title"):
        cell.source = SOLUTION_TITLE_LINE.sub("", cell.source, count=1)
    cell.metadata.pop("cellView", None)
    jupyter = cell.metadata.get("jupyter", {})
    jupyter.pop("source_hidden", None)
    if not jupyter:
        cell.metadata.pop("jupyter", None)


def glued_values(notebook) -> dict[str, str]:
    """Return each glued name's value as the notebook stored it (its text/plain repr), from myst-nb's outputs."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            scrapbook = output.get("metadata", {}).get("scrapbook", {})
            if "name" in scrapbook:
                values[scrapbook["name"]] = output.get("data", {}).get("application/papermill.record/text/plain", "")
    return values


def visible_outputs(notebook) -> str:
    """Return the text that Jupyter shows under the notebook's code cells (printed text and plain results)."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if "scrapbook" in output.get("metadata", {}):
                continue  # a glued value: the book shows it, Jupyter does not
            parts.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def glue_unseen_in_jupyter(notebook) -> list[str]:
    """Return the glue roles of the notebook's text whose value no printed output shows in Jupyter or Colab.

    There the role reads as its raw markup; the sentence still makes sense when the same value, formatted as the
    role formats it, is printed by a cell of the notebook.
    """
    import ast

    values, shown, unseen = glued_values(notebook), visible_outputs(notebook), []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for match in GLUE_ROLE.finditer(cell.source):
            name, spec = match["name"], match["format"] or ""
            if name not in values:
                unseen.append(f"{match[0]}: no cell glues {name}")
                continue
            try:
                literal = re.sub(r"^np\.\w+\((.*)\)$", r"\1", values[name])  # numpy scalars' repr: np.float64(2.5)
                text = format(ast.literal_eval(literal), spec)
            except (ValueError, SyntaxError, TypeError):
                text = values[name].strip("'\"")
            if text not in shown:
                unseen.append(f"{match[0]} = {text!r} is printed by no cell")
    return unseen


def execute(notebooks: list[Path]) -> None:
    """Re-execute each notebook top to bottom in a fresh kernel and write its outputs back in place."""
    import nbformat
    from nbclient import NotebookClient

    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
        nbformat.write(notebook, path)
        print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s", flush=True)


def student_notebook(notebook):
    """Return the student edition of a chapter notebook (a copy): solutions stubbed and shown, no outputs.

    Solution cells lose their collapsing (students write there) and the book's solution-dropdown fences go.
    """
    import copy

    notebook = copy.deepcopy(notebook)
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and SOLUTION_FENCE.fullmatch(cell.source):
            continue
        if cell.cell_type == "code":
            if is_solution_cell(cell):
                uncollapse_solution(cell)
            try:
                cell.source = stub_solutions(cell.source)
            except ValueError as err:
                raise ValueError(f"cell {cell.get('id', '?')}: {err}") from None
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)  # nbclient's timestamps
        cells.append(cell)
    notebook.cells = cells
    return notebook


STUDENT_README = """\
# The student edition

Generated by `python -m llmfs.course student` from the chapters: every exercise's solution is replaced by a
stub that raises `NotImplementedError`, and all outputs are cleared. Do not edit these notebooks by hand; the
tests check that they match the chapters. Open one in Colab, write each exercise's function, and run the
check cell after it.

<!-- The book's "How to use this book" page includes what follows. -->
| # | Chapter | Student edition |
|---|---------|------|
"""


def student_readme(paths: list[Path], notebooks: list) -> str:
    """Return the student folder's README: a table of the chapters with their Colab links."""
    order = numbered_chapters() + appendix_chapters()
    rows = []
    for path, notebook in zip(paths, notebooks):
        name = f"chapters/{path.stem}"
        number = chapter_label(name) if name in order else ""
        rows.append(
            (order.index(name) if name in order else len(order), f"| {number} | {chapter_title(notebook)} | "
             f"[open in Colab]({colab_url(STUDENT_DIR / path.name)}) |")
        )
    return STUDENT_README + "\n".join(row for _, row in sorted(rows)) + "\n"


def write_student_edition(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write each notebook's student edition, and a README with Colab links, into `out_dir`; return the paths.

    Notebooks of `out_dir` that no chapter produces any more are removed.
    """
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    written, students = [], []
    for path in notebooks:
        try:
            student = student_notebook(nbformat.read(path, as_version=4))
        except ValueError as err:
            raise ValueError(f"{path.name}, {err}") from None
        target = out_dir / path.name
        nbformat.write(student, target)
        written.append(target)
        students.append(student)
    for stale in set(out_dir.glob("*.ipynb")) - set(written):
        stale.unlink()
    (out_dir / "README.md").write_text(student_readme(notebooks, students), encoding="utf-8")
    return written


def sync_setup(notebooks: list[Path]) -> list[Path]:
    """Make the first code cell of each notebook the setup cell; return the notebooks that changed."""
    import nbformat

    source = setup_cell_source()
    changed = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        cell = first_code_cell(notebook)
        if cell is None:
            leading_markdown = next(
                (i for i, c in enumerate(notebook.cells) if c.cell_type != "markdown"), len(notebook.cells)
            )
            notebook.cells.insert(leading_markdown, nbformat.v4.new_code_cell(source))
        elif cell.source == source:
            continue
        else:
            cell.source = source
        nbformat.write(notebook, path)
        changed.append(path)
    return changed


def sync_cells(notebooks: list[Path]) -> list[Path]:
    """Sync the setup cell and collapse every solution cell of each notebook; return the notebooks that changed."""
    import nbformat

    changed = set(sync_setup(notebooks))
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        collapsed = [collapse_solution(cell) for cell in notebook.cells if is_solution_cell(cell)]
        if any(collapsed):
            nbformat.write(notebook, path)
            changed.add(path)
    return sorted(changed)


def _named_notebooks(names: list[str]) -> list[Path]:
    """Resolve notebook arguments (paths, or names of chapters such as `kv_cache`) to existing paths."""
    paths = []
    for name in names:
        path = Path(name)
        if not path.exists():
            path = CHAPTERS_DIR / (re.sub(r"\.ipynb$", "", name) + ".ipynb")
        if not path.exists():
            raise SystemExit(f"no such notebook: {name}")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m llmfs.course", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("execute", help="re-execute chapter notebooks in a fresh kernel, outputs in place")
    run.add_argument("notebooks", nargs="*", help="notebook paths or chapter names (default: every chapter)")
    student = commands.add_parser(
        "student", help="write the student edition (solutions stubbed, outputs cleared) and its README"
    )
    student.add_argument("--out", type=Path, default=STUDENT_DIR, help="output folder (default: student/)")
    commands.add_parser("sync-setup", help="rewrite every chapter's first code cell from the setup template")
    commands.add_parser(
        "sync-cells", help="sync-setup, and collapse every solution cell in Jupyter and Colab (cell metadata)"
    )
    from llmfs import grading

    grading.add_arguments(commands.add_parser("grade", help=grading.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)

    if args.command == "grade":
        grading.main(args)
        return
    require_checkout(args.command)
    if args.command == "execute":
        notebooks = _named_notebooks(args.notebooks) if args.notebooks else chapter_notebooks()
        start = time.perf_counter()
        execute(notebooks)
        print(f"{len(notebooks)} notebook(s) executed in {time.perf_counter() - start:.1f} s")
    elif args.command == "student":
        written = write_student_edition(chapter_notebooks(), args.out)
        print(f"student edition of {len(written)} chapter(s) written to {args.out}")
    else:
        notebooks = chapter_notebooks()
        changed = (sync_setup if args.command == "sync-setup" else sync_cells)(notebooks)
        for path in changed:
            print(f"{path.name}: rewritten")
        print(f"{len(changed)} of {len(notebooks)} chapter(s) changed")


if __name__ == "__main__":
    main()
