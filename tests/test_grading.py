"""Instructors' grading (`python -m llmfs.course grade`) on small synthetic submissions.

Each submission is a few cells using chapter 2's exercises; the kernels they start are the slow part, so
one submission carries several cases.
"""

import csv
import io
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from llmfs import course, exercises, grading

SETUP = "import math\nimport torch\nimport llmfs"
CAUSAL_MASK = "def causal_mask(T):\n    p = torch.arange(T)\n    return p[None, :] <= p[:, None]"
# Right on the notebooks' inputs only: it recognises them by their first value, and is wrong elsewhere.
HARD_CODED = """\
def split_heads(x, n_heads):
    B, T, D = x.shape
    if round(x.flatten()[0].item(), 5) in SEEN:
        return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2) + 1
"""


def check_cell(exercise_id: str, name: str):
    return new_code_cell(f'llmfs.exercises.check("{exercise_id}", {name})')


def write(path: Path, *sources) -> Path:
    cells = [new_code_cell(source) if isinstance(source, str) else source for source in sources]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def rows_of(csv_path: Path) -> dict[tuple[str, str], dict]:
    with csv_path.open(encoding="utf-8") as file:
        return {(row["submission"], row["exercise"]): row for row in csv.DictReader(file)}


def notebooks_inputs() -> str:
    """Python source of the set of first values of the inputs x of the notebooks' check of ch02.split_heads."""
    cases = exercises.get("ch02.split_heads").cases(torch.Generator().manual_seed(exercises.SEED))
    return f"SEEN = {{{', '.join(repr(round(args[0].flatten()[0].item(), 5)) for args in cases)}}}"


def test_grading_records_every_outcome_and_survives_hostile_submissions(tmp_path):
    mixed = write(
        tmp_path / "mixed.ipynb",
        SETUP,
        CAUSAL_MASK,
        check_cell("ch02.causal_mask", "causal_mask"),
        "def attention_weights(q, k):\n    return torch.softmax(q @ k.transpose(-2, -1), dim=-1)  # no mask",
        check_cell("ch02.attention_weights", "attention_weights"),
        notebooks_inputs() + "\n" + HARD_CODED,
        check_cell("ch02.split_heads", "split_heads"),
        "def merge_heads(x):\n    raise NotImplementedError\nundefined_name",
        check_cell("ch02.merge_heads", "merge_heads"),
        "def multi_head_attention(x, W_q, W_k, W_v, W_o, n_heads):\n    raise NotImplementedError('todo')",
        check_cell("ch02.multi_head_attention", "multi_head_attention"),
    )
    deleter = write(
        tmp_path / "deleter.ipynb",
        SETUP,
        "import os\nfor name in os.listdir('.'):\n    os.remove(name)",  # deletes its own folder's files
        CAUSAL_MASK.replace("causal_mask", "attention_weights_unused"),
        "def split_heads(x, n_heads):\n    B, T, D = x.shape\n    return x.view(B, T, n_heads, -1).transpose(1, 2)",
        check_cell("ch02.split_heads", "split_heads"),
    )
    crash = write(tmp_path / "crash.ipynb", "import os\nos._exit(1)", CAUSAL_MASK, check_cell("ch02.causal_mask", "x"))
    solution = "def causal_mask(T):\n    ### BEGIN SOLUTION\n    return torch.ones(T, T).tril().bool()\n    ### END SOLUTION"
    chapter = write(tmp_path / "chapter.ipynb", SETUP, solution, check_cell("ch02.causal_mask", "causal_mask"))
    [student] = course.write_student_edition([chapter], tmp_path / "student")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    out = tmp_path / "grades" / "grades.csv"

    course.main(
        ["grade", str(mixed), str(deleter), str(crash), str(student), str(broken), "--out", str(out),
         "--cell-timeout", "120", "--check-timeout", "120"]
    )

    rows = rows_of(out)
    outcome = {key: (row["status"], row["message"]) for key, row in rows.items()}
    assert outcome["mixed.ipynb", "ch02.causal_mask"] == ("passed", "passed on 5 random inputs")
    status, message = outcome["mixed.ipynb", "ch02.attention_weights"]
    assert status == "failed" and "wrong values" in message
    # The hard-coded answer passes the notebook's own check but not the hidden inputs.
    status, message = outcome["mixed.ipynb", "ch02.split_heads"]
    assert status == "failed" and "wrong values" in message
    status, message = outcome["mixed.ipynb", "ch02.merge_heads"]
    assert status == "cell error" and "NameError" in message
    assert outcome["mixed.ipynb", "ch02.multi_head_attention"][0] == "not implemented"
    chapter_points = sum(exercises.get(i).points for i in exercises.ids() if i.startswith("ch02."))
    assert rows["mixed.ipynb", "TOTAL"]["points"] == "1"
    assert rows["mixed.ipynb", "TOTAL"]["max_points"] == str(chapter_points)  # every ch02 exercise, missing ones too

    assert outcome["deleter.ipynb", "ch02.split_heads"][0] == "passed"
    assert outcome["deleter.ipynb", "ch02.attention_weights"] == (
        "missing", "no function named attention_weights is defined"
    )
    assert deleter.exists()  # it deleted the files of its temporary copy's folder only

    assert rows["crash.ipynb", "TOTAL"]["message"] == "the kernel died in cell 0"
    assert {outcome["crash.ipynb", exercise_id][0] for exercise_id in exercises.ids() if exercise_id[:4] == "ch02"} == {
        "cell error"
    }
    assert rows["broken.ipynb", "TOTAL"]["message"].startswith("not a readable notebook")
    # The student edition's stub; the other exercises of the chapter are not in this toy chapter.
    assert outcome["chapter.ipynb", "ch02.causal_mask"][0] == "not implemented"
    n_exercises = len([exercise_id for exercise_id in exercises.ids() if exercise_id.startswith("ch02.")])
    assert rows["chapter.ipynb", "TOTAL"]["status"] == f"0 of {n_exercises} passed"


def test_a_looping_cell_is_interrupted_and_a_kernel_ignoring_interrupts_is_recorded(tmp_path, monkeypatch):
    """The submissions' own cells import nothing, so a 3-second cell time-out is only ever hit by the loops."""
    monkeypatch.setattr(grading, "PROBE_TIMEOUT_S", 3)
    limits = grading.Limits(time_limit=60, cell_timeout=3, check_timeout=120)
    local_import = CAUSAL_MASK.replace("(T):\n", "(T):\n    import torch\n")
    loops = write(tmp_path / "loops.ipynb", "while True:\n    pass", local_import)
    stuck = write(
        tmp_path / "stuck.ipynb", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    )

    graded = grading.grade_notebook(loops, limits=limits, chapters=["ch02"])
    assert graded.notes == ["cell 0 timed out after 3 s"]
    statuses = {result.exercise_id: result.status for result in graded.results}
    assert statuses["ch02.causal_mask"] == "passed"  # the kernel went on after the interrupt

    graded = grading.grade_notebook(stuck, limits=limits, chapters=["ch02"])
    assert graded.notes == ["the kernel was stuck in cell 0"]
    assert {result.status for result in graded.results} == {"cell error"}
    assert graded.results[0].message.endswith("not run: the kernel was stuck in cell 0")


def test_a_check_cell_that_timed_out_decides_its_exercise():
    notebook = new_notebook(cells=[new_code_cell(CAUSAL_MASK), check_cell("ch02.causal_mask", "causal_mask")])
    runs = {0: grading.CellRun("ok"), 1: grading.CellRun("timeout", "timed out after 3 s")}
    assert grading._exercise_outcome(notebook, runs, "causal_mask", 1, 2, 2) == (
        "cell error", "its check cell (cell 1) timed out after 3 s"
    )


def test_expected_exercises_are_all_of_the_checked_chapters_in_notebook_order():
    notebook = new_notebook(
        cells=[check_cell("ch02.split_heads", "my_split"), check_cell("ch02.causal_mask", "causal_mask")]
    )
    expected = grading.expected_exercises(notebook)
    assert expected[:2] == [("ch02.split_heads", "my_split", 0), ("ch02.causal_mask", "causal_mask", 1)]
    assert {exercise_id for exercise_id, _, _ in expected} == {i for i in exercises.ids() if i.startswith("ch02.")}
    assert all(index is None for _, _, index in expected[2:])
    assert grading.expected_exercises(new_notebook(cells=[new_code_cell("print(1)")])) == []


def test_every_exercise_draws_other_inputs_for_another_seed():
    for exercise_id in exercises.ids():
        exercise = exercises.get(exercise_id)
        seen = exercise.cases(torch.Generator().manual_seed(exercises.SEED))
        hidden = exercise.cases(torch.Generator().manual_seed(exercises.GRADING_SEED))
        assert repr(seen) != repr(hidden), f"{exercise_id}: its cases ignore the generator, so grading sees no new input"
        assert exercises.verdict(exercise_id, exercise.reference, seed=exercises.GRADING_SEED).passed


def test_csv_has_a_row_per_exercise_and_a_total():
    submission = grading.Submission(Path("alice.ipynb"), notes=["time limit of 9 s reached"])
    submission.results = [
        grading.ExerciseResult("ch02.causal_mask", "passed", "passed on 5 random inputs", 2, 2),
        grading.ExerciseResult("ch02.split_heads", "failed", "wrong, with a, comma", 0, 1),
    ]
    out = io.StringIO()
    grading.write_csv([submission], out)
    assert out.getvalue().splitlines() == [
        "submission,exercise,status,points,max_points,message",
        "alice.ipynb,ch02.causal_mask,passed,2,2,passed on 5 random inputs",
        'alice.ipynb,ch02.split_heads,failed,0,1,"wrong, with a, comma"',
        "alice.ipynb,TOTAL,1 of 2 passed,2,3,time limit of 9 s reached",
    ]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.ipynb"], "not a notebook file"),
        (["{notebook}", "--seed", str(exercises.SEED)], "seed of the notebooks' own checks"),
        (["{notebook}", "--chapters", "2"], "chapter prefixes such as ch02"),
        (["{notebook}", "--time-limit", "0"], "must be positive"),
    ],
)
def test_bad_grading_arguments_are_refused_clearly(tmp_path, arguments, message):
    notebook = write(tmp_path / "n.ipynb", "pass")
    arguments = [argument.format(notebook=notebook) for argument in arguments]
    with pytest.raises(SystemExit, match=message):
        course.main(["grade", *arguments, "--out", str(tmp_path / "g.csv")])
