"""The check toolkit (autograder/checks/_compare.py): one closeness rule, nearest mistake, cascades,
the gradient judge; the trust boundary checked statically (no probe computes a grade, no judge runs
the student's code); hidden cases drawn from the instructor's secret."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from autograder.checks import _compare, _guard, _secret
from autograder.checks._compare import (
    Earlier,
    cascade_runs,
    close,
    close_number,
    judge_cascade,
    judge_gradients,
    judge_only,
    nearest_mistake,
    run_backward,
    score,
    substituted,
)
from autograder.checks._core import CheckFailure, attempt, call, expect_close
from autograder.checks._plain import dumps

CHECKS = Path(__file__).resolve().parents[1] / "autograder" / "checks"
TESTS = Path(__file__).resolve().parent
#: every lesson's checks (the trust boundary is checked on all of them)
ALL_LESSONS = sorted(p.stem for p in CHECKS.glob("lesson*.py"))
#: the lessons whose hidden values come from the secret (lessons 06-10 join as they move onto it)
LESSONS = ["lesson00", "lesson01", "lesson02", "lesson03", "lesson04", "lesson05"]

NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------ one closeness rule


@pytest.mark.parametrize("answer, reference", [
    ([NAN], [1.0]), ([INF], [1.0]), ([-INF], [1e30]), ([1.0], [INF]), ([INF], [-INF]), ([INF], [NAN]),
])
def test_nan_or_inf_where_the_reference_has_none_fails_every_comparison(answer, reference):
    a, e = torch.tensor(answer), torch.tensor(reference)
    assert not close(a, e, rtol=1e9, atol=1e9)
    assert score(a, e, rtol=1e9, atol=1e9) == math.inf
    assert not close_number(answer[0], reference[0], rtol=1e9, atol=1e9)
    with pytest.raises(CheckFailure):
        expect_close(a, e, "x", rtol=1e9, atol=1e9)


def test_matching_nan_and_inf_agree():
    a = torch.tensor([1.0, NAN, INF, -INF])
    assert close(a, a.clone(), rtol=0, atol=0)
    expect_close(a, a.clone(), "x", rtol=0, atol=0)
    assert close_number(NAN, NAN, atol=0) and close_number(INF, INF, atol=0)


def test_closeness_is_shape_type_and_tolerance():
    e = torch.tensor([1.0, 2.0])
    assert close(e + 1e-6, e, rtol=0, atol=1e-5)
    assert not close(e + 1e-4, e, rtol=0, atol=1e-5)
    assert close(e * (1 + 1e-6), e, rtol=1e-5, atol=0)
    assert not close(e.view(2, 1), e, rtol=1, atol=1)
    assert not close([1.0, 2.0], e, rtol=1, atol=1)
    assert not close(e.to(torch.complex64), e, rtol=1, atol=1)


def test_nearest_mistake_names_the_closest_not_the_first():
    answer = torch.tensor([1.0, 2.0])
    cands = [("far", answer + 5e-4), ("near", answer + 1e-4), (None, answer + 3.0)]
    assert nearest_mistake(answer, cands, rtol=0, atol=1e-3) == "near"
    assert nearest_mistake(answer, [(None, answer), ("wrong", answer + 1e-6)], rtol=0, atol=1e-3) is None
    assert nearest_mistake(answer, [("lazy", lambda: answer * 1.0)], rtol=0, atol=1e-9) == "lazy"
    assert nearest_mistake(answer, [("raises", lambda: 1 / 0), ("ok", answer)], rtol=0, atol=0) == "ok"
    assert nearest_mistake(answer + 10, cands, rtol=0, atol=1e-3) is None
    assert nearest_mistake(torch.tensor([NAN, 2.0]), [("x", answer)], rtol=1, atol=1) is None


# ------------------------------------------------------------------ judge_only


@judge_only
def _answer(x: int) -> int:
    return x + 1


def test_judge_only_refuses_to_run_inside_the_students_code():
    assert _answer(1) == 2 and _guard.is_judge_only(_answer)
    with pytest.raises(CheckFailure, match="_answer, the answer it is compared with"):
        call(lambda x: _answer(x), 1, what="student")
    caught = attempt(lambda: _answer(1), what="student")
    assert "the answer it is compared with" in caught["error"]


# ------------------------------------------------------------------ the cascade rule


@judge_only
def _ref_double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


DOUBLE = Earlier("double", 1, _ref_double)


def _namespace(source: str, **names: Any) -> dict[str, Any]:
    space: dict[str, Any] = {"torch": torch, **names}
    exec(source, space)
    return space


LATER = "def later(x):\n    return double(x) + 1\n"


def _grade(run: Any) -> str:
    value = run["value"] if "value" in run else None
    if type(value) is not torch.Tensor or value.dtype != torch.float32 or not torch.equal(value, torch.tensor([3.0])):
        raise CheckFailure(f"later is wrong: {run}")
    return "later is right."


def _runs(space: dict[str, Any]) -> Any:
    fn = space["later"]
    return cascade_runs((fn,), [DOUBLE], lambda: attempt(fn, torch.tensor([1.0]), what="later"))


@pytest.mark.parametrize("earlier, why", [
    ("def double(x):\n    return 3 * x\n", "wrong value"),
    ("def double(x):\n    return (2 * x).long()\n", "wrong dtype"),
    ("def double(x):\n    raise NotImplementedError()\n", "raised"),
])
def test_a_later_exercise_is_graded_on_its_own_code_whatever_the_earlier_did(earlier, why):
    space = _namespace(earlier + LATER)
    before = space["double"]
    message = judge_cascade(_runs(space), _grade, "later", [DOUBLE])
    assert message.startswith("later is right.") and "fix exercise 1 (double) first" in message, (why, message)
    assert space["double"] is before  # the student's own function is back


def test_a_later_exercise_is_graded_when_the_earlier_cell_never_ran():
    space = _namespace(LATER)  # screened: `double` was never defined
    message = judge_cascade(_runs(space), _grade, "later", [DOUBLE])
    assert message.startswith("later is right.") and "not defined" in message and "exercise 1" in message
    assert "double" not in space  # the stand-in is gone again


def test_the_later_exercises_own_mistake_still_fails():
    space = _namespace("def double(x):\n    return 2 * x\n" + "def later(x):\n    return double(x) - 1\n")
    with pytest.raises(CheckFailure, match="later is wrong"):
        judge_cascade(_runs(space), _grade, "later", [DOUBLE])


def test_a_right_earlier_answer_gives_no_note():
    space = _namespace("def double(x):\n    return x + x\n" + LATER)
    assert judge_cascade(_runs(space), _grade, "later", [DOUBLE]) == "later is right."


def test_substituted_restores_and_adds_nothing_permanent():
    space = _namespace(LATER)
    with substituted((space["later"],), [DOUBLE]):
        assert space["later"](torch.tensor([1.0])).item() == 3.0
    assert "double" not in space


# ------------------------------------------------------------------ the gradient judge


def _loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum()


def _detached_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.detach() * b).sum()


def test_gradient_judge_names_the_detached_input():
    inputs = {"d_real": torch.randn(4), "d_fake": torch.randn(4)}
    good = attempt(run_backward, _loss, inputs, ["d_real", "d_fake"], what="loss")
    judge_gradients(good, _loss, inputs, ["d_real", "d_fake"], what="loss", rtol=1e-5, atol=1e-6)
    bad = attempt(run_backward, _detached_loss, inputs, ["d_real", "d_fake"], what="loss")
    with pytest.raises(CheckFailure, match=r"no gradient reaches d_real: did you \.detach\(\) it"):
        judge_gradients(bad, _loss, inputs, ["d_real", "d_fake"], what="loss", rtol=1e-5, atol=1e-6)


def test_gradient_judge_compares_values_and_nan():
    inputs = {"a": torch.randn(4), "b": torch.randn(4)}
    wrong = attempt(run_backward, lambda a, b: (2 * a * b).sum(), inputs, ["a", "b"], what="loss")
    with pytest.raises(CheckFailure, match="gradient w.r.t. a differs"):
        judge_gradients(wrong, _loss, inputs, ["a", "b"], what="loss", rtol=1e-5, atol=1e-6)
    nan = attempt(run_backward, lambda a, b: (a * b * torch.tensor(NAN)).sum(), inputs, ["a"], what="loss")
    with pytest.raises(CheckFailure):
        judge_gradients(nan, _loss, inputs, ["a"], what="loss", rtol=1, atol=1)
    off = attempt(run_backward, lambda a, b: float((a * b).sum()), inputs, ["a"], what="loss")
    with pytest.raises(CheckFailure, match="not connected to autograd"):
        judge_gradients(off, _loss, inputs, ["a"], what="loss", rtol=1, atol=1)


# ------------------------------------------------------------------ the trust boundary, statically

#: what runs the student's code: a judge reaching one of these calls the student's code
RUNNERS = {("_core", "call"), ("_core", "attempt"), ("_compare", "run_backward"), ("_compare", "cascade_runs"),
           ("_compare", "substituted"), ("_compare", "tracing"), ("_compare", "traced_forward")}


def _index(sources: dict[str, str]) -> tuple[dict, dict, list]:
    """Functions and imports of every module, and the (module, probe, judge) of each exercise."""
    funcs: dict[tuple[str, str], ast.AST] = {}
    imports: dict[tuple[str, str], tuple[str, str]] = {}
    exercises: list[tuple[str, str, str]] = []
    for mod, text in sources.items():
        tree = ast.parse(text)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                funcs[(mod, node.name)] = node
            elif isinstance(node, ast.ImportFrom) and node.module:
                src = node.module.rsplit(".", 1)[-1]
                if node.level or node.module.startswith("autograder.checks"):
                    for alias in node.names:
                        imports[(mod, alias.asname or alias.name)] = (src, alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "exercise"
                    and len(node.args) >= 3):
                # a name, or a factory call (``_probe(kind)``): the factory's closure holds the probe
                probe, judge = (a.func if isinstance(a, ast.Call) else a for a in node.args[1:3])
                if isinstance(probe, ast.Name) and isinstance(judge, ast.Name):
                    exercises.append((mod, probe.id, judge.id))
    return funcs, imports, exercises


def _resolve(mod: str, name: str, funcs: dict, imports: dict) -> tuple[str, str] | None:
    seen = set()
    while (mod, name) not in funcs:
        if (mod, name) not in imports or (mod, name) in seen:
            return None
        seen.add((mod, name))
        mod, name = imports[(mod, name)]
    return mod, name


def _closure(start: tuple[str, str], funcs: dict, imports: dict,
             opaque: set[tuple[str, str]] = frozenset()) -> set[tuple[str, str]]:
    """Every function ``start`` refers to (calls, or passes on as a callback), across the modules;
    the functions in ``opaque`` are reached but not looked into."""
    todo, seen = [start], {start}
    while todo:
        mod, name = todo.pop()
        if (mod, name) in opaque and (mod, name) != start:
            continue
        for node in ast.walk(funcs[(mod, name)]):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                target = _resolve(mod, node.id, funcs, imports)
                if target is not None and target not in seen:
                    seen.add(target)
                    todo.append(target)
    return seen


#: the parameter names judges and their helpers give the probe's data (a judge's second parameter too)
DATA_NAMES = {"data", "record", "records", "result", "results", "outcome", "run", "runs", "reply", "info", "entry"}


def _calls_an_item_of_its_arguments(fn: ast.AST) -> bool:
    """A call of something taken out of the probe's data (``data["fn"](...)``)."""
    args = fn.args.args if isinstance(fn, ast.FunctionDef) else []
    params = {a.arg for a in args if a.arg in DATA_NAMES} | {a.arg for a in args[1:2]}
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript):
            root = node.func.value
            while isinstance(root, ast.Subscript | ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in params:
                return True
    return False


def boundary_violations(sources: dict[str, str], judge_only_names: set[tuple[str, str]]) -> list[str]:
    """What crosses the trust boundary: a probe reaching a ``judge_only`` function (a probe that computes
    a grade), a judge reaching a runner of the student's code or calling an object of the probe data."""
    funcs, imports, exercises = _index(sources)
    found = []
    for mod, probe, judge in exercises:
        for side, name in (("probe", probe), ("judge", judge)):
            if (mod, name) not in funcs:
                found.append(f"{mod}: the {side} {name} is not a function of the module")
        if found:
            continue
        for target in sorted(_closure((mod, probe), funcs, imports)):
            if target in judge_only_names:
                found.append(f"{mod}: the probe {probe} reaches the judge_only {target[0]}.{target[1]}")
        # a judge_only helper computes the reference (it may trace the reference's own model with the
        # toolkit's hooks): what it runs is reference code, so the judge's walk does not look inside it
        for target in sorted(_closure((mod, judge), funcs, imports, opaque=judge_only_names)):
            if target in RUNNERS:
                found.append(f"{mod}: the judge {judge} reaches {target[0]}.{target[1]}, which runs student code")
            elif _calls_an_item_of_its_arguments(funcs[target]) and target[0].startswith("lesson"):
                found.append(f"{mod}: {target[1]} (judge {judge}) calls an object taken from its arguments")
    return found


def _sources(names: list[str]) -> dict[str, str]:
    return {p.stem: p.read_text() for p in CHECKS.glob("*.py") if p.stem.startswith("_") or p.stem in names}


def _judge_only_names(sources: dict[str, str]) -> set[tuple[str, str]]:
    marked = set()
    for mod in sources:
        module = importlib.import_module(f"autograder.checks.{mod}")
        for name, value in vars(module).items():
            if _guard.is_judge_only(value) and getattr(value, "__module__", "").endswith(mod):
                marked.add((mod, name))
    return marked


def test_no_probe_computes_a_grade_and_no_judge_runs_the_students_code():
    sources = _sources(ALL_LESSONS)
    marked = _judge_only_names(sources)
    assert ("_compare", "judge_gradients") in marked and ("lesson04", "reference_sigmoid") in marked
    assert ("lesson03", "reference_forward") in marked and ("_core", "expect_close") in marked
    _, _, exercises = _index(sources)
    assert len(ALL_LESSONS) == 11 and {m for m, _, _ in exercises} == set(ALL_LESSONS)  # every lesson found
    assert boundary_violations(sources, marked) == []


def test_the_boundary_check_catches_a_probe_that_grades_and_a_judge_that_runs_student_code():
    sources = _sources([])
    sources["lessonXX"] = '''
from ._core import attempt, call, exercise
from ._compare import close

def _reference(x):
    return x

def _probe(fn, cases):
    out = call(fn, 1)
    return {"ok": close(out, _reference(1), rtol=0, atol=0)}

def _judge(cases, data):
    return str(data["fn"](1)) + str(attempt(len, []))

check_x = exercise("x", _probe, _judge)
'''
    marked = _judge_only_names({k: v for k, v in sources.items() if k != "lessonXX"}) | {("lessonXX", "_reference")}
    found = boundary_violations(sources, marked)
    assert any("probe _probe reaches the judge_only _compare.close" in f for f in found), found
    assert any("probe _probe reaches the judge_only lessonXX._reference" in f for f in found), found
    assert any("reaches _core.attempt" in f for f in found), found
    assert any("calls an object taken from its arguments" in f for f in found), found


def test_no_lesson_module_imports_another():
    for path in CHECKS.glob("lesson*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert "lesson" not in node.module.rsplit(".", 1)[-1], f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any("checks.lesson" in a.name for a in node.names), path.name


# ------------------------------------------------------------------ hidden cases from the secret


def _with_secret(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(_secret.ENV, value)
    _secret.reset()


@pytest.fixture(autouse=True)
def _forget_the_secret():
    yield
    _secret.reset()


def _exercises(lesson: str) -> list[Any]:
    module = importlib.import_module(f"autograder.checks.{lesson}")
    return [v.exercise for k, v in sorted(vars(module).items()) if k.startswith("check_") and hasattr(v, "exercise")]


def _cases_bytes(ex: Any, hidden: bool) -> bytes:
    return dumps(ex.cases(hidden))


@pytest.mark.parametrize("lesson", LESSONS)
def test_hidden_values_come_from_the_secret_and_visible_ones_do_not(lesson, monkeypatch):
    exercises = _exercises(lesson)
    assert exercises
    _with_secret(monkeypatch, "instructor A")
    a = [(_cases_bytes(ex, True), _cases_bytes(ex, False)) for ex in exercises]
    _secret.reset()
    a_again = [(_cases_bytes(ex, True), _cases_bytes(ex, False)) for ex in exercises]
    _with_secret(monkeypatch, "instructor B")
    b = [(_cases_bytes(ex, True), _cases_bytes(ex, False)) for ex in exercises]
    for ex, (ha, va), (ha2, va2), (hb, vb) in zip(exercises, a, a_again, b, strict=True):
        assert ha == ha2 and va == va2, f"{ex.name}: the same secret must give the same cases"
        assert va == vb, f"{ex.name}: the visible cases must not depend on the secret"
        assert ha != hb, f"{ex.name}: the hidden cases must depend on the secret"


def _load_test_module(lesson: str) -> Any:
    name = f"_toolkit_{lesson}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / f"test_checks_{lesson}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


#: the lesson tests' own solution runs (each calls its checks with hidden=True)
SOLUTION_TESTS = [
    ("lesson00", "test_from_gan_range_reference_passes"), ("lesson00", "test_to_gan_range_reference_passes"),
    ("lesson01", "test_conv_output_size_reference_passes"), ("lesson01", "test_conv2d_scratch_reference_passes"),
    ("lesson01", "test_down_block_reference_passes"),
    ("lesson02", "test_conv_transpose_output_size_reference_passes"),
    ("lesson02", "test_conv_transpose2d_scratch_reference_passes"), ("lesson02", "test_up_block_reference_passes"),
    ("lesson02", "test_adjoint_sides_reference_passes"), ("lesson02", "test_conv2d_backward_reference_passes"),
    ("lesson03", "test_solution_passes"), ("lesson04", "test_solution_passes"), ("lesson05", "test_reference_passes"),
]


@pytest.mark.parametrize("secret", ["course 2026", "another instructor"])
@pytest.mark.parametrize("lesson, test", SOLUTION_TESTS)
def test_the_solution_passes_under_any_secret(lesson, test, secret, monkeypatch, capsys):
    _with_secret(monkeypatch, secret)
    getattr(_load_test_module(lesson), test)(capsys)


def test_a_lookup_table_from_the_wheel_cannot_pass_the_hidden_cases(monkeypatch):
    """A student reads the published checks and tabulates the hidden configurations they draw (under
    whatever secret their machine has), answering with a wrong formula elsewhere."""
    from autograder.checks import lesson01

    _with_secret(monkeypatch, "the student's own machine")
    table = {cfg: lesson01._reference_size(*cfg) for cfg in lesson01._size_configs(True)}

    def conv_output_size(h, k, s, p, d=1):
        return table.get((h, k, s, p, d), (h + 2 * p - k) // s + 1)  # the table, else dilation forgotten

    lesson01.check_conv_output_size(conv_output_size, hidden=True)  # the student's secret: the table passes
    _with_secret(monkeypatch, "the instructor's")
    with pytest.raises(CheckFailure, match="nn.Conv2d gives"):
        lesson01.check_conv_output_size(conv_output_size, hidden=True)


def test_toolkit_exports_what_it_documents():
    for name in _compare.__all__:
        assert hasattr(_compare, name), name


def test_an_earlier_exercise_used_through_a_helper_is_substituted_too():
    space = _namespace("def double(x):\n    return 3 * x\n" "def helper(x):\n    return double(x)\n"
                       "def later(x):\n    return helper(x) + 1\n")
    message = judge_cascade(_runs(space), _grade, "later", [DOUBLE])
    assert message.startswith("later is right.") and "fix exercise 1 (double) first" in message, message


def test_a_server_asked_for_one_lesson_imports_its_checks_and_their_imports_not_another_lessons():
    """``import_lessons`` in a fresh process, as a judge server for a class of lesson 01 runs it: lesson 01's
    checks and what its judges import (dcgan_ref.models), and nothing of lesson 08's
    (dcgan_ref.train, torchvision and the torch._dynamo it pulls in: 2 s a server)."""
    import subprocess

    code = ("import sys, torch; from autograder import checks; "
            "checks.import_lessons(['autograder.checks.lesson01', 'not.a.lesson'], judge=True); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dcgan_ref', 'torchvision', 'autograder') "
            "or m == 'torch._dynamo'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(ast.literal_eval(proc.stdout.strip().splitlines()[-1]))
    assert {"autograder.checks.lesson01", "dcgan_ref.models"} <= loaded
    assert not loaded & {"autograder.checks.lesson08", "dcgan_ref.train", "torchvision", "torch._dynamo", "not"}
