"""The repair step: submissions as they arrive from Colab get back what nbgrader needs, and say so."""

from __future__ import annotations

import copy
import csv

import nbformat
import pytest
from course_fixture import FIXTURE, answer_ids, build_course, colab_json, filled

from autograder import course
from autograder.collect import collect, student_id_from_name
from autograder.release import generate
from autograder.repair import overwrite_from_source, repair_notebook


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("course"))
    generate(root=root, quiet=True)
    return root


def _lessons():
    real = [a for a in course.assignments() if course.release_notebook(a).exists()]
    return [FIXTURE, *real]


@pytest.fixture(params=_lessons())
def lesson(request, fixture_root):
    """(source, release) notebooks of the fixture lesson and of every released real lesson."""
    root = fixture_root if request.param == FIXTURE else None
    src = nbformat.read(course.source_notebook(request.param, root), as_version=4)
    rel = nbformat.read(course.release_notebook(request.param, root), as_version=4)
    return request.param, src, rel


def _view(nb):
    """What nbgrader looks at: per cell its type, id, nbgrader metadata and source."""
    cells = nb if isinstance(nb, list) else nb.cells
    return [(c.cell_type, c.get("id"), c.metadata.get("nbgrader"), c.source) for c in cells]


def _kinds(repairs):
    return [r.kind for r in repairs]


def test_intact_submission_needs_no_repair(lesson):
    _, src, rel = lesson
    good = filled(rel, src)
    fixed, repairs = repair_notebook(good, rel)
    assert repairs == []
    assert _view(fixed) == _view(good)


@pytest.mark.parametrize("answered", [True, False])
def test_colab_saved_notebook_is_restored_exactly(lesson, answered):
    """nbformat 4.0, no ids, Colab metadata, nbgrader metadata stripped -> as released."""
    _, src, rel = lesson
    sub = filled(rel, src) if answered else copy.deepcopy(rel)
    colab = nbformat.reads(colab_json(sub), as_version=4)
    assert all("nbgrader" not in c.metadata for c in colab.cells)
    fixed, repairs = repair_notebook(colab, rel)
    assert _view(fixed) == _view(sub)
    assert (fixed.nbformat, fixed.nbformat_minor) == (4, 5)
    nbformat.validate(fixed)
    kinds = _kinds(repairs)
    assert "format" in kinds and "metadata" in kinds
    if answered:
        assert {r.grade_id for r in repairs if r.kind == "answer"} == set(answer_ids(src))


def test_duplicated_answer_cell(lesson):
    """A copied answer cell: the last answered copy is graded, an unanswered copy removed."""
    _, src, rel = lesson
    good = filled(rel, src)
    gid = answer_ids(src)[0]
    i = next(k for k, c in enumerate(good.cells) if c.get("id") == gid)
    # the student copied the empty cell, answered in the copy, left the original unanswered
    sub = copy.deepcopy(good)
    blank = copy.deepcopy(next(c for c in rel.cells if c.get("id") == gid))
    sub.cells.insert(i, blank)
    sub.cells[i + 1]["id"] = "copy1"
    fixed, repairs = repair_notebook(sub, rel)
    assert _view(fixed) == _view(good)
    assert any(r.kind == "duplicate" and r.grade_id == gid for r in repairs)

    # two different answers: both kept (both run), metadata on the last one only
    sub2 = copy.deepcopy(good)
    first = copy.deepcopy(sub2.cells[i])
    first.source = first.source + "\n# first attempt"
    first["id"] = "attempt1"
    sub2.cells.insert(i, first)
    fixed2, repairs2 = repair_notebook(sub2, rel)
    marked = [c for c in fixed2.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
    assert len(marked) == 1 and marked[0].source == good.cells[i].source
    assert len(fixed2.cells) == len(good.cells) + 1
    assert len({c.id for c in fixed2.cells}) == len(fixed2.cells)
    assert any(r.kind == "duplicate" for r in repairs2)


def test_deleted_and_edited_test_cells(lesson):
    _, src, rel = lesson
    good = filled(rel, src)
    tests = [c.id for c in good.cells if c.metadata.get("nbgrader", {}).get("grade")]
    sub = copy.deepcopy(good)
    sub.cells = [c for c in sub.cells if c.id != tests[0]]  # deleted
    if len(tests) > 1:
        edited = next(c for c in sub.cells if c.id == tests[-1])
        edited.source = "pass  # the check was annoying"
    fixed, repairs = repair_notebook(sub, rel)
    assert _view(fixed) == _view(good)
    assert any(r.kind == "missing" and r.grade_id == tests[0] for r in repairs)
    if len(tests) > 1:
        assert any(r.kind == "restored" and r.grade_id == tests[-1] for r in repairs)

    # the same after Colab stripped the metadata: nothing ties the edited cell to its test any more,
    # so the original test is put back after its answer and the edited cell stays as student code
    colab = nbformat.reads(colab_json(sub), as_version=4)
    fixed2, _ = repair_notebook(colab, rel)
    assert _view([c for c in fixed2.cells if c.metadata.get("nbgrader")]) == _view(good)
    assert len(fixed2.cells) == len(good.cells) + (len(tests) > 1)


def test_student_cells_stay_and_unknown_ids_go(lesson):
    _, src, rel = lesson
    good = filled(rel, src)
    gid = answer_ids(src)[-1]
    i = next(k for k, c in enumerate(good.cells) if c.get("id") == gid)
    sub = copy.deepcopy(good)
    scratch = nbformat.v4.new_code_cell("print('trying things')")
    stray = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "not_in_lesson", "grade": False,
                                                                       "solution": True, "locked": False,
                                                                       "schema_version": 3}})
    sub.cells[i + 1: i + 1] = [scratch, stray]
    fixed, repairs = repair_notebook(nbformat.reads(colab_json(sub), as_version=4), rel)
    sources = [c.source for c in fixed.cells]
    assert "print('trying things')" in sources and "x = 1" in sources
    assert sources.index("print('trying things')") == i + 1
    kept = [c for c in fixed.cells if c.metadata.get("nbgrader")]
    assert [_view_cell(c) for c in kept] == [_view_cell(c) for c in good.cells]
    fixed_meta, repairs_meta = repair_notebook(sub, rel)
    assert any(r.kind == "unknown" and r.grade_id == "not_in_lesson" for r in repairs_meta)
    assert all(c.metadata.get("nbgrader", {}).get("grade_id") != "not_in_lesson" for c in fixed_meta.cells)


def _view_cell(c):
    return (c.cell_type, c.get("id"), c.metadata.get("nbgrader"), c.source)


def test_deleted_answer_cell_is_put_back_unanswered(lesson):
    _, src, rel = lesson
    good = filled(rel, src)
    gid = answer_ids(src)[0]
    sub = copy.deepcopy(good)
    sub.cells = [c for c in sub.cells if c.id != gid]
    fixed, repairs = repair_notebook(sub, rel)
    assert _view_cell(next(c for c in fixed.cells if c.id == gid)) == _view_cell(
        next(c for c in rel.cells if c.id == gid)
    )
    assert [c.id for c in fixed.cells] == [c.id for c in good.cells]
    assert any(r.kind == "missing" and r.grade_id == gid for r in repairs)


def test_overwrite_from_source_brings_hidden_tests_and_points(lesson):
    _, src, rel = lesson
    good = filled(rel, src)
    sub = copy.deepcopy(good)
    graded = [c for c in sub.cells if c.metadata.get("nbgrader", {}).get("grade")]
    graded[0].metadata.nbgrader["points"] = 1000  # a student edited the metadata
    deleted = graded[-1].id
    sub.cells = [c for c in sub.cells if c.id != deleted]
    out = overwrite_from_source(sub, src)
    src_tests = {c.id: c for c in src.cells if c.metadata.get("nbgrader", {}).get("grade")}
    out_tests = {c.id: c for c in out.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert set(out_tests) == set(src_tests)
    for gid, cell in out_tests.items():
        assert cell.source == src_tests[gid].source
        assert "BEGIN HIDDEN TESTS" in cell.source
        assert float(cell.metadata.nbgrader["points"]) == float(src_tests[gid].metadata.nbgrader["points"])
    order = [c.id for c in src.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.id for c in out.cells if c.id in src_tests] == order


def test_student_id_from_file_names():
    a = "01_strided_convolution"
    assert student_id_from_name("alice", a) == "alice"
    assert student_id_from_name(f"Copy of {a} - bob", a) == "bob"
    assert student_id_from_name(f"carol_{a} (1)", a) == "carol"
    assert student_id_from_name(f"Copy of {a}", a) == ""


def test_collect_from_inbox_and_in_place(fixture_root, tmp_path):
    src = nbformat.read(course.source_notebook(FIXTURE, fixture_root), as_version=4)
    rel = nbformat.read(course.release_notebook(FIXTURE, fixture_root), as_version=4)
    inbox = tmp_path / "inbox"
    (inbox / "bob").mkdir(parents=True)
    (inbox / "alice.ipynb").write_text(colab_json(filled(rel, src)))
    nbformat.write(filled(rel, src), inbox / "bob" / f"Copy of {FIXTURE}.ipynb")
    (inbox / f"Copy of {FIXTURE}.ipynb").write_text("{not json")
    results = {s.student: s for s in collect(FIXTURE, [inbox], root=fixture_root)}
    assert set(results) == {"alice", "bob", ""}
    assert results[""].error and "student" in results[""].error
    assert results["alice"].repairs and not results["bob"].repairs
    for who in ("alice", "bob"):
        dest = fixture_root / "autograder" / "submitted" / who / FIXTURE / f"{FIXTURE}.ipynb"
        assert _view(nbformat.read(dest, as_version=4)) == _view(filled(rel, src))
    rows = list(csv.DictReader(open(fixture_root / "autograder" / f"collect_{FIXTURE}.csv")))
    assert {r["student"] for r in rows} == {"alice", "bob", ""}
    assert any(r["student"] == "alice" and r["kind"] == "metadata" for r in rows)

    # in place: a stripped notebook already in submitted/ is repaired, the original kept
    dest = fixture_root / "autograder" / "submitted" / "dave" / FIXTURE / f"{FIXTURE}.ipynb"
    dest.parent.mkdir(parents=True)
    dest.write_text(colab_json(filled(rel, src)))
    again = {s.student: s for s in collect(FIXTURE, root=fixture_root)}
    assert again["dave"].repairs and not again["alice"].repairs
    assert _view(nbformat.read(dest, as_version=4)) == _view(filled(rel, src))
    assert dest.with_suffix(".ipynb.orig").exists()
