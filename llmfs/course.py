"""Maintenance commands for the course's chapter notebooks: refresh outputs, make the student edition, sync setup.

Run from a source checkout (e.g. `pip install -e .`): `python -m llmfs.course --help`.
nbformat and nbclient are imported inside the commands: they are book tools, not runtime deps of llmfs.
"""

import argparse
import re
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAPTERS_DIR = REPO_ROOT / "chapters"
CELL_TIMEOUT_S = 600

SETUP_CELL_TEMPLATE = """\
# Setup: in Colab this installs llmfs; locally and in CI it is already installed.
import importlib.util
if importlib.util.find_spec("llmfs") is None:
    %pip install -q "llmfs @ git+{repository_url}"
import llmfs
DEVICE = llmfs.pick_device()"""

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB_MESSAGE = "Replace this line with your solution, then run the check cell below."


def chapter_notebooks() -> list[Path]:
    """Return the chapter notebooks of the checkout, sorted by file name."""
    return sorted(CHAPTERS_DIR.glob("*.ipynb"))


def repository_url() -> str:
    """Return the repository URL, written once in the book's _config.yml (repository.url)."""
    import yaml

    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"]


def setup_cell_source() -> str:
    """Return the setup cell every chapter starts with, for this repository's URL."""
    return SETUP_CELL_TEMPLATE.format(repository_url=repository_url())


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


def write_student_edition(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write each notebook with solutions stubbed and outputs cleared into `out_dir`; return the new paths."""
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            try:
                cell.source = stub_solutions(cell.source)
            except ValueError as err:
                raise ValueError(f"{path.name}, cell {cell.get('id', '?')}: {err}") from None
            cell.outputs = []
            cell.execution_count = None
        target = out_dir / path.name
        nbformat.write(notebook, target)
        written.append(target)
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
    """Parse the command line and run one maintenance command."""
    parser = argparse.ArgumentParser(prog="python -m llmfs.course", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("execute", help="re-execute chapter notebooks in a fresh kernel, outputs in place")
    run.add_argument("notebooks", nargs="*", help="notebook paths or chapter names (default: every chapter)")
    student = commands.add_parser("student", help="write the student edition: solutions stubbed, outputs cleared")
    student.add_argument("--out", type=Path, default=REPO_ROOT / "_build" / "student", help="output folder")
    commands.add_parser("sync-setup", help="rewrite every chapter's first code cell from the setup template")
    args = parser.parse_args(argv)

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
        changed = sync_setup(notebooks)
        for path in changed:
            print(f"{path.name}: setup cell rewritten")
        print(f"{len(changed)} of {len(notebooks)} chapter(s) changed")


if __name__ == "__main__":
    main()
