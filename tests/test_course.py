"""Checks of every chapter notebook without a kernel: table of contents, setup cell, and self-checking exercises.

Solution cells run on their own in a namespace holding only the setup names (SETUP_NAMES), so chapter
authors keep them self-contained apart from those names (book/instructors.md says so).
"""

import functools
import os
import re
import shutil
import subprocess
import sys
import zipfile

import nbformat
import pytest
import yaml

import llmfs
from llmfs import course

SETUP_NAMES = "import torch, math\nimport torch.nn as nn\nimport torch.nn.functional as F\nimport llmfs\n"
CHECK_CALL = re.compile(r"""llmfs\.exercises\.check\(\s*["']([^"']+)["']\s*,\s*(\w+)\s*\)""")

TOC = yaml.safe_load((course.REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
NUMBERED_CHAPTERS = [
    entry["file"] for part in TOC.get("parts", []) if part.get("numbered") for entry in part["chapters"]
]
APPENDICES = course.appendix_chapters()
NOTEBOOKS = course.chapter_notebooks()


def toc_name(path) -> str:
    """The notebook's entry in _toc.yml: its path from the repository root, without suffix."""
    return path.relative_to(course.REPO_ROOT).with_suffix("").as_posix()


def chapter_prefix(path) -> str:
    """The exercise-id prefix of a chapter, `chNN` from its position in the numbered part of _toc.yml (an
    appendix: `appX` from its position in the Appendix part)."""
    name = toc_name(path)
    if name in NUMBERED_CHAPTERS:
        return f"ch{NUMBERED_CHAPTERS.index(name) + 1:02d}"
    return f"app{chr(ord('A') + APPENDICES.index(name))}"


def test_exercise_prefixes_of_chapters_and_appendices():
    assert course.exercise_prefix(NUMBERED_CHAPTERS[2]) == "ch03"
    letters = [chr(ord("A") + i) for i in range(len(APPENDICES))]
    assert [course.exercise_prefix(name) for name in APPENDICES] == [f"app{letter}" for letter in letters]
    with pytest.raises(ValueError, match="neither"):
        course.exercise_prefix("book/intro")


def exercises_of(notebook) -> list[tuple[str, str, str]]:
    """Return (exercise id, function name, solution cell source) for each check cell of a notebook.

    The solution is the nearest code cell with a `### BEGIN SOLUTION` marker before the check cell.
    """
    found, solution = [], None
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if course.BEGIN_SOLUTION in cell.source:
            solution = cell.source
        for exercise_id, function_name in CHECK_CALL.findall(cell.source):
            assert solution is not None, f"check of {exercise_id} has no solution cell before it"
            found.append((exercise_id, function_name, solution))
            solution = None
    return found


def run_check(source: str, exercise_id: str, function_name: str) -> bool:
    """Exec a solution cell in a namespace with only the setup names, then check its function."""
    namespace: dict = {}
    exec(SETUP_NAMES, namespace)
    exec(compile(source, f"<{exercise_id} solution>", "exec"), namespace)
    return llmfs.exercises.check(exercise_id, namespace[function_name])


def test_setup_cell_is_rendered_from_the_repository_url():
    url = yaml.safe_load((course.REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]
    assert course.setup_cell_source() == (
        "# Setup: in Colab this installs llmfs; locally and in CI it is already installed.\n"
        "import importlib.util\n"
        'if importlib.util.find_spec("llmfs") is None:\n'
        f'    %pip install -q "llmfs-course @ git+{url}"\n'
        "import llmfs\n"
        "DEVICE = llmfs.pick_device()"
    )


def test_stub_keeps_the_marker_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\nprint(f)"
    stub = course.stub_solutions(source)
    assert stub.splitlines()[:3] == [
        "def f(x):",
        "    # YOUR CODE HERE",
        f"    raise NotImplementedError({course.STUB_MESSAGE!r})",
    ]
    assert "x + 1" not in stub and "SOLUTION" not in stub and stub.endswith("\n\nprint(f)")


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN SOLUTION\nx = 1",
        "x = 1\n### END SOLUTION",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
    ],
)
def test_unbalanced_markers_are_refused(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        course.stub_solutions(source)


def test_student_edition_and_sync_setup_on_a_toy_chapter(tmp_path):
    solution = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Toy"),
            nbformat.v4.new_code_cell("import llmfs", outputs=[nbformat.v4.new_output("stream", text="hi")]),
            nbformat.v4.new_code_cell(solution, execution_count=2),
        ]
    )
    chapter = tmp_path / "toy.ipynb"
    nbformat.write(notebook, chapter)

    assert course.sync_setup([chapter]) == [chapter]
    assert course.sync_setup([chapter]) == []
    assert course.first_code_cell(nbformat.read(chapter, as_version=4)).source == course.setup_cell_source()

    [student] = course.write_student_edition([chapter], tmp_path / "student")
    cells = nbformat.read(student, as_version=4).cells
    assert all(cell.outputs == [] and cell.execution_count is None for cell in cells if cell.cell_type == "code")
    assert cells[2].source == course.stub_solutions(solution)


def test_sync_cells_collapses_solutions_and_the_student_edition_opens_them(tmp_path):
    solution = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(course.setup_cell_source()),
            nbformat.v4.new_markdown_cell("```{solution-start} ch99-double\n:class: dropdown\n```"),
            nbformat.v4.new_code_cell(solution),
            nbformat.v4.new_markdown_cell("```{solution-end}\n```"),
            nbformat.v4.new_code_cell('llmfs.exercises.check("ch99.double", double)'),
        ]
    )
    chapter = tmp_path / "toy.ipynb"
    nbformat.write(notebook, chapter)

    assert course.sync_cells([chapter]) == [chapter]
    assert course.sync_cells([chapter]) == []
    cell = nbformat.read(chapter, as_version=4).cells[2]
    assert cell.source == course.SOLUTION_TITLE + "\n" + solution
    assert cell.metadata["cellView"] == "form" and cell.metadata["jupyter"]["source_hidden"] is True
    assert course.stub_solutions(cell.source).startswith("#@title")  # the markers still work below the title

    [student] = course.write_student_edition([chapter], tmp_path / "student")
    cells = nbformat.read(student, as_version=4).cells
    assert [c.cell_type for c in cells] == ["code", "code", "code"]  # the book's dropdown fences are gone
    assert cells[1].source == course.stub_solutions(solution) and "cellView" not in cells[1].metadata
    assert "jupyter" not in cells[1].metadata
    readme = (tmp_path / "student" / "README.md").read_text(encoding="utf-8")
    assert "https://colab.research.google.com/github/" in readme and "/student/toy.ipynb" in readme


def test_colab_url_points_into_the_repository():
    url = course.colab_url(course.STUDENT_DIR / "kv_cache.ipynb")
    assert re.fullmatch(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/student/kv_cache\.ipynb", url)


def test_student_edition_in_the_repository_matches_the_chapters(tmp_path):
    expected = tmp_path / "student"
    course.write_student_edition(NOTEBOOKS, expected)
    committed = course.STUDENT_DIR
    names = sorted(path.name for path in expected.iterdir())
    assert committed.is_dir() and sorted(path.name for path in committed.iterdir()) == names, (
        "run `python -m llmfs.course student`"
    )
    for name in names:
        assert (committed / name).read_bytes() == (expected / name).read_bytes(), (
            f"student/{name} is out of date: run `python -m llmfs.course student`"
        )


def build_wheel(tmp_path):
    """Build the package's wheel from a copy of the files it is made of (no build folder in the checkout)."""
    source = tmp_path / "source"
    shutil.copytree(course.REPO_ROOT / "llmfs", source / "llmfs", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(course.REPO_ROOT / name, source / name)
    try:
        import setuptools

        isolation = [] if int(setuptools.__version__.split(".")[0]) >= 77 else ["--use-pep517"]
    except ImportError:
        isolation = ["--use-pep517"]
    no_isolation = ["--no-build-isolation"] if not isolation else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *no_isolation, "-w", str(tmp_path), str(source)],
        check=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    return wheel


def test_the_installed_wheel_grades_and_says_the_other_commands_need_a_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode()
    assert wheel.name.startswith("llmfs_course-") and "Name: llmfs-course" in metadata
    assert "License-Expression: MIT" in metadata and any(n.endswith("licenses/LICENSE") for n in names)
    assert "llmfs/data/NOTICE.md" in names and not any(n.startswith("chapters/") for n in names)

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    run = functools.partial(
        subprocess.run, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(site)}
    )
    student = run([sys.executable, "-m", "llmfs.course", "student"])
    assert student.returncode != 0 and "source checkout" in student.stderr, student.stderr
    assert str(site / "llmfs") in student.stderr  # the message names the installed copy it ran from
    grade = run([sys.executable, "-m", "llmfs.course", "grade", "--help"])
    assert grade.returncode == 0 and "--seed" in grade.stdout, grade.stderr


def test_commands_that_change_chapters_need_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(course, "CHAPTERS_DIR", tmp_path / "chapters")
    with pytest.raises(SystemExit, match="source checkout"):
        course.main(["student"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_chapter_is_in_the_table_of_contents(path):
    assert toc_name(path) in NUMBERED_CHAPTERS + APPENDICES, (
        f"add `- file: {toc_name(path)}` to the Chapters (or Appendix) part of _toc.yml")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_chapter_starts_with_the_setup_cell(path):
    cell = course.first_code_cell(nbformat.read(path, as_version=4))
    assert cell is not None and cell.source == course.setup_cell_source(), "run `python -m llmfs.course sync-cells`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_solution_cells_are_collapsed_in_jupyter_and_colab(path):
    notebook = nbformat.read(path, as_version=4)
    solutions = [cell for cell in notebook.cells if course.is_solution_cell(cell)]
    assert solutions, f"{path.name} has no solution cell"
    assert not any(course.collapse_solution(cell) for cell in solutions), "run `python -m llmfs.course sync-cells`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_glued_numbers_are_also_printed_for_jupyter_and_colab(path):
    unseen = course.glue_unseen_in_jupyter(nbformat.read(path, as_version=4))
    assert unseen == [], (
        "Jupyter and Colab show a {glue} role as raw markup: print each glued value in its cell, formatted as the "
        "sentence formats it, so the reader there sees the number:\n" + "\n".join(unseen)
    )


def test_glue_check_finds_a_number_printed_nowhere():
    glued = nbformat.v4.new_output(
        "display_data",
        data={"application/papermill.record/text/plain": "0.12345"},
        metadata={"scrapbook": {"name": "x", "mime_prefix": "application/papermill.record/"}},
    )
    printed = nbformat.v4.new_output("stream", text="x is 0.12\n")
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("glue('x', x)", outputs=[glued]),
            nbformat.v4.new_markdown_cell("x is {glue:text}`x:.2f`, {glue:text}`x:.3f` or {glue:text}`y`."),
        ]
    )
    assert course.glue_unseen_in_jupyter(notebook) == [
        "{glue:text}`x:.2f` = '0.12' is printed by no cell",
        "{glue:text}`x:.3f` = '0.123' is printed by no cell",
        "{glue:text}`y`: no cell glues y",
    ]
    notebook.cells[0].outputs.append(printed)
    assert course.glue_unseen_in_jupyter(notebook) == ["{glue:text}`x:.3f` = '0.123' is printed by no cell",
                                                        "{glue:text}`y`: no cell glues y"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_solution_markers_are_balanced(path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            course.stub_solutions(cell.source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_chapter_checks_exactly_its_registered_exercises(path):
    checked = [exercise_id for exercise_id, _, _ in exercises_of(nbformat.read(path, as_version=4))]
    prefix = chapter_prefix(path)
    registered = {exercise_id for exercise_id in llmfs.exercises.ids() if exercise_id.startswith(prefix + ".")}
    assert checked, f"{path.name} has no exercise check cell"
    assert set(checked) == registered, f"checked in the notebook: {sorted(checked)}; registered: {sorted(registered)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_solutions_pass_and_student_stubs_are_not_implemented(path, capsys):
    for exercise_id, function_name, solution in exercises_of(nbformat.read(path, as_version=4)):
        assert run_check(solution, exercise_id, function_name), capsys.readouterr().out
        capsys.readouterr()
        assert not run_check(course.stub_solutions(solution), exercise_id, function_name)
        assert "not implemented yet" in capsys.readouterr().out
