"""Static screening of the code a student wrote, before any of it runs in the grading worker.

The worker is contained (a sandbox) and the judgement runs in another process, so this screen is
the *second* line: it refuses what could reach past the sandbox or the probe/judge split (the
interpreter's machinery, torch's internals that switch the in-process refusal off, threads and
processes that run outside it, patching what the checks call), or what no honest answer of these
exercises needs. Everything else an honest answer writes passes: the PyTorch DCGAN tutorial's
``m.__class__.__name__``, ``type(m).__name__``, ``isinstance``, ``getattr(nn, "ReLU")``,
``super().__init__()``, dataclasses, f-strings, ``nn.Module.apply``, loops, ``unfold``, ``einsum``.
``tests/honest/`` is the corpus that measures false refusals; ``tests/test_screen.py`` the hostile one.

A cell is read as IPython compiles it (``Screen``): magics become ``get_ipython()`` calls, and the
``__future__`` flags of earlier cells apply (a cell parses differently after some of them). A cell
that does not compile is refused, never waved through. A refused cell is not run; its exercise scores
0 with the finding's one line, and the report flags the submission for an instructor's review.

The rules, each with the reason a finding gives (``RULES``):

==========================  =====================================================================
``unparsable``              IPython could not compile the cell: what cannot be read is not run
``future``                  a ``__future__`` import other than the harmless ones changes how later
                            cells compile (``barry_as_FLUFL``)
``import``                  a module no answer needs: the interpreter, processes, the grader, the
                            reference (``sys``, ``importlib``, ``subprocess``, ``dcgan_ref``, ...)
``internals``               torch's internals (``torch._C``, ``torch.ops``, ``torch.library``,
                            ``torch.autograd.graph``): they can switch the grader's refusals off
``module-through-module``   a module reached as another module's attribute (``torch.sys``,
                            ``typing.os``, ``F.importlib``): an import the screen cannot see
``machinery-name``          a name bound to the interpreter's machinery (the setup cell's ``sys``,
                            ``importlib``, ``subprocess``; IPython's ``get_ipython``)
``builtin``                 ``exec``/``eval``/``compile``/``__import__``/``globals``/``vars``/...:
                            code or namespaces the screen cannot read
``dunder``                  a special attribute that reaches the machinery (``__globals__``,
                            ``__subclasses__``, ``__dict__``, ``__builtins__``); reading
                            ``__class__``/``__name__``/``__doc__``/... and ``__init__`` is allowed
``dunder-write``            assigning a special attribute rewrites how an object behaves
``dunder-def``              a class redefining comparison, conversion or attribute lookup can
                            fool a probe (``__eq__``, ``__getattr__``, ``__torch_function__``)
``private``                 a private attribute (``x._name``) of something not your own (``self``)
``name-string``             an attribute named by a string is read as that attribute; a name the
                            screen cannot compute must start with text that rules out every
                            refused name (``setattr(self, f"conv{i}", ...)`` passes)
``attr-function``           ``getattr``/``attrgetter``/``methodcaller`` passed as a value (to
                            ``reduce``, ``map``): the names they reach are hidden
``concurrency``             threads and processes (thread or process pools, ``joblib``,
                            ``tqdm.contrib.concurrent``): they run outside the grader's refusals
``autograd-node``           autograd's nodes called by hand (``y.grad_fn(...)``,
                            ``next_functions``) or a hand-made ``autograd.Function``: computing
                            outside what the exercise's refusals see; no lesson asks for either
``patch``                   assigning to an imported module or class (``F.conv2d = ...``) changes
                            what the checks call (cuDNN/TF32 switches and ``rcParams`` excepted)
``process``                 shell commands, processes, signals, the environment, descriptors
``file-write``              writing files other than through ``torch.save``
==========================  =====================================================================

IPython's ``%time``/``%timeit``/``%%time``/``%%timeit``/``%%capture`` and ``%matplotlib <backend>`` are
allowed, their code screened like a cell's; every other magic, ``!cmd`` and ``x?`` is refused.
Deliberately *not* refused: ``hasattr`` (it returns a bool and reaches nothing), ``itemgetter``
(an item is only what a dict already holds; the dicts that hold modules, ``globals()``, ``vars()``,
``__dict__``, ``sys.modules``, are refused themselves), ``functools.reduce`` with ordinary functions,
``DataLoader(num_workers=...)`` and ``torch.compile`` (lesson 08's speed knobs; the sandbox contains the
processes), and reading ``y.grad_fn`` (printing it, ``is None``, ``.name()``).
"""

from __future__ import annotations

import ast
import codeop
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: the reason behind each rule, as a finding's message ends
RULES: dict[str, str] = {
    "unparsable": "a cell IPython cannot compile is not run",
    "future": "it changes how later cells compile",
    "import": "no answer of this course needs it",
    "internals": "torch's internals can switch the grader's refusals off",
    "module-through-module": "a module reached through another is an import the screen cannot see",
    "machinery-name": "the interpreter's machinery is not for answers",
    "builtin": "it runs or reaches code the screen cannot read",
    "dunder": "special attributes reach the interpreter's machinery",
    "dunder-write": "it rewrites how an object behaves",
    "dunder-def": "redefining comparison, conversion or lookup can fool a probe",
    "private": "private parts of what is not your own are off limits",
    "name-string": "an attribute named by a string must be one the screen can read",
    "attr-function": "it hides the names it reaches",
    "concurrency": "threads and processes run outside the grader's refusals",
    "autograd-node": "it computes outside what autograd and the checks see",
    "patch": "it changes what the checks call",
    "process": "processes, signals, the environment and descriptors are not for answers",
    "file-write": "save with torch.save",
}

#: top-level modules an answer may import (the worker imports them all before dropping privileges)
ALLOWED_MODULES = frozenset({
    "math", "cmath", "numbers", "random", "itertools", "functools", "collections", "typing", "dataclasses",
    "enum", "abc", "copy", "operator", "statistics", "string", "re", "time", "warnings", "decimal", "fractions",
    "heapq", "bisect", "contextlib", "numpy", "torch", "torchvision", "scipy", "matplotlib", "PIL", "tqdm",
    "sklearn", "pathlib", "os", "json", "csv", "__future__",
})
#: module prefixes refused even under an allowed top-level module: torch's internals
REFUSED_MODULE_PREFIXES = (
    "torch._", "torch.ops", "torch.library", "torch.overrides", "torch.utils._", "torch.fx", "torch.jit",
    "torch.compiler", "torch.testing", "torch.autograd.graph", "numpy.ctypeslib", "os.path._",
)
#: modules (top level or full name) that start threads or processes
CONCURRENCY_MODULES = frozenset({
    "threading", "_thread", "multiprocessing", "concurrent", "joblib", "asyncio", "tqdm.contrib.concurrent",
    "torch.multiprocessing", "torch.distributed", "sklearn.utils.parallel",
})
#: modules that are refused outright, with what a message calls them
REFUSED_MODULES = {
    "dcgan_ref": "dcgan_ref, the reference the checks compare with", "sys": "sys", "importlib": "importlib",
    "inspect": "inspect", "gc": "gc", "ctypes": "ctypes", "builtins": "builtins", "subprocess": "subprocess",
    "signal": "signal", "socket": "socket", "pickle": "pickle", "marshal": "marshal", "types": "types",
    "code": "code", "runpy": "runpy", "shutil": "shutil", "IPython": "IPython", "autograder": "autograder (the grader)",
    "traceback": "traceback", "atexit": "atexit", "resource": "resource", "pty": "pty", "mmap": "mmap", "dis": "dis",
    "posix": "posix", "io": "io", "tempfile": "tempfile", "weakref": "weakref", "site": "site", "pdb": "pdb",
}
#: attribute names that are themselves a refused module: ``torch.sys``, ``typing.os``, ``F.importlib``
MODULE_ATTRIBUTES = frozenset(
    {m for m in REFUSED_MODULES if m not in ("code", "types", "io", "signal", "dis", "resource", "site")}
    | {"os", "_C", "_ops", "_dynamo", "_thread", "threading", "multiprocessing", "concurrent", "joblib",
       "asyncio", "_sys", "_os", "_imp", "_io", "posixpath", "_posixsubprocess", "_weakref"}
)
#: names of the interpreter's machinery that cells may find bound (the setup cell imports some of
#: them; IPython binds get_ipython): any use is refused
MACHINERY_NAMES = frozenset(MODULE_ATTRIBUTES - {"os", "_C", "_ops", "_dynamo"}) | {"get_ipython", "__builtins__"}
#: built-in functions that run, or reach, code the screen cannot read
REFUSED_BUILTINS = {
    "exec": "exec", "eval": "eval", "compile": "compile", "__import__": "__import__", "globals": "globals()",
    "locals": "locals()", "vars": "vars()", "breakpoint": "breakpoint", "memoryview": "memoryview",
}
#: attributes refused on anything, by rule (``torch.ops.aten.conv2d``, ``os.system``, ``p.write_text``)
REFUSED_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "ops": ("internals", "torch.ops"), "library": ("internals", "torch.library"),
    "overrides": ("internals", "torch.overrides"),
    **{a: ("process", f"os.{a}") for a in (
        "system", "popen", "fork", "forkpty", "kill", "killpg", "execv", "execve", "execl", "execlp", "execvp",
        "execvpe", "spawnv", "spawnl", "spawnve", "posix_spawn", "posix_spawnp", "setsid", "dup", "dup2", "putenv",
        "unsetenv", "environ", "settrace", "setprofile", "pipe", "openpty", "fdopen", "_exit")},
    **{a: ("file-write", a) for a in ("chmod", "chown", "symlink", "link", "unlink", "rmdir", "rmtree",
                                       "write_text", "write_bytes", "truncate")},
    **{a: ("concurrency", a) for a in (
        "Thread", "Timer", "Process", "Pool", "ThreadPool", "ThreadPoolExecutor", "ProcessPoolExecutor",
        "Parallel", "thread_map", "process_map", "start_new_thread", "get_context", "set_start_method")},
}
#: what an answer may use of ``os`` (paths and folders for a checkpoint, nothing that reaches a process or fd)
OS_ALLOWED = frozenset({"path", "makedirs", "listdir", "getcwd", "sep", "linesep", "cpu_count", "scandir", "stat",
                        "replace", "rename", "fspath", "PathLike", "walk", "curdir", "pardir", "extsep", "mkdir"})
#: special attributes an answer may read: names, docs and the class (the DCGAN tutorial's
#: ``m.__class__.__name__``), and the protocol methods a subclass calls on its parent
READ_DUNDERS = frozenset({
    "__class__", "__name__", "__qualname__", "__module__", "__doc__", "__version__", "__init__", "__call__",
    "__len__", "__getitem__", "__iter__", "__next__", "__repr__", "__str__", "__post_init__", "__enter__",
    "__exit__", "__contains__",
})
#: special names a cell may use as plain names (``if __name__ == "__main__":``, ``from __future__``)
READ_DUNDER_NAMES = frozenset({"__name__", "__doc__", "__class__", "__future__"})
#: special methods a class in an answer may define
ALLOWED_DEFINED_DUNDERS = frozenset({
    "__init__", "__call__", "__repr__", "__str__", "__len__", "__getitem__", "__iter__", "__next__",
    "__post_init__", "__enter__", "__exit__", "__contains__", "__setitem__",
})
#: ``from __future__ import`` names that change nothing about how later cells parse
HARMLESS_FUTURES = frozenset({"annotations", "division", "absolute_import", "print_function", "unicode_literals",
                              "with_statement", "generators", "nested_scopes", "generator_stop"})
#: module attributes an answer may set: numerical switches and plot settings, nothing a check calls
SETTINGS = ("cudnn.benchmark", "cudnn.deterministic", "allow_tf32", "allow_fp16_reduced_precision_reduction",
            "allow_bf16_reduced_precision_reduction", "rcParams")
#: IPython magics an honest notebook uses, whose code the screen reads like any other cell's: line magic
#: -> what its argument must be ("code": screened as Python after timeit's options; "word": a backend name)
ALLOWED_LINE_MAGICS = {"time": "code", "timeit": "code", "matplotlib": "word", "who": "word", "whos": "word"}
#: cell magics whose body is screened as Python
ALLOWED_CELL_MAGICS = frozenset({"time", "timeit", "capture"})
_MAGIC_OPTIONS = re.compile(r"\s*(?:(?:-[nrp]\s*\d+|-[qoc]|--no-raise-error)\s+)*")
#: every attribute name whose use is refused (a computed name must rule all of them out)
_REFUSED_ATTRIBUTE_NAMES = frozenset(MODULE_ATTRIBUTES | set(REFUSED_ATTRIBUTES) | {"grad_fn", "next_functions"})
#: builtins that take an attribute name as a string
_GETATTR_FAMILY = frozenset({"getattr", "setattr", "delattr"})
#: operator's functions that take attribute (or method) names as strings
_OPERATOR_FAMILY = frozenset({"attrgetter", "methodcaller"})


@dataclass(frozen=True)
class Finding:
    """One thing an honest answer never needs, where it is (1-based line of the cell), and its rule."""

    line: int
    what: str
    rule: str = ""

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _python_source(source: str) -> str:
    """The cell as IPython runs it: magics (``%x``, ``!cmd``, ``x?``) become ``get_ipython()`` calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _clip(text: str, n: int = 60) -> str:
    """One line of at most ``n`` characters of code, for a message."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _module_refusal(name: str) -> tuple[str, str] | None:
    """(rule, what) when importing the module ``name`` is refused."""
    top = name.split(".")[0]
    if top in REFUSED_MODULES:
        return "import", f"import of {REFUSED_MODULES[top]}"
    if top in CONCURRENCY_MODULES or any(name == m or name.startswith(m + ".") for m in CONCURRENCY_MODULES):
        return "concurrency", f"import of {name} (threads or processes)"
    if any(name == p.rstrip(".") or name.startswith(p) for p in REFUSED_MODULE_PREFIXES):
        return "internals", f"import of {name} (torch's internals)"
    if top not in ALLOWED_MODULES:
        return "import", f"import of {name} (not a module these exercises use)"
    return None


def _attribute_refusal(attr: str, root: str | None, on_os: bool) -> tuple[str, str] | None:
    """(rule, what) when reading ``<something rooted at root>.attr`` is refused; ``on_os``: straight on ``os``."""
    if _is_dunder(attr):
        return None if attr in READ_DUNDERS else ("dunder", f"the special attribute {attr}")
    if attr in MODULE_ATTRIBUTES:
        if attr in ("_C", "_ops", "_dynamo"):
            return "internals", "torch's internals"
        if attr in CONCURRENCY_MODULES:
            return "concurrency", f"the module {attr} reached as an attribute"
        return "module-through-module", f"the module {attr} reached as an attribute"
    if attr in REFUSED_ATTRIBUTES:
        return REFUSED_ATTRIBUTES[attr][0], f"use of {REFUSED_ATTRIBUTES[attr][1]}"
    if attr.startswith("_") and root not in ("self", "cls"):
        return "private", f"the private attribute {attr}"
    if on_os and attr not in OS_ALLOWED:
        return "process", f"os.{attr} (an answer uses os only for paths and folders)"
    if attr == "next_functions":
        return "autograd-node", "autograd's graph walked by hand (.next_functions)"
    return None


def _safe_prefix(node: ast.AST) -> str | None:
    """The literal text a computed string starts with (f"conv{i}" -> "conv"), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _safe_prefix(node.left)
    return None


class _StringBindings(ast.NodeVisitor):
    """Every string a name can hold in one cell, where the cell says so; None where it cannot tell.

    Only plain bindings count: ``n = "ReLU"``, ``for n in ("ReLU", "Tanh")`` or over a list name
    used for nothing else (a list that is appended to, passed on or indexed could hold anything).
    Any other binding of the name (a parameter, ``:=``, ``+=``, ``import``, ``except ... as``) makes
    it unknown.
    """

    def __init__(self, tree: ast.AST) -> None:
        self.values: dict[str, list[str] | None] = {}
        self.lists: dict[str, list[str] | None] = {}  # names bound to a literal list of strings
        self.grad_fn_names: set[str] = set()
        self._handled: set[int] = set()  # Name nodes bound by _target
        iters = {id(n.iter) for n in ast.walk(tree) if isinstance(n, ast.For | ast.AsyncFor | ast.comprehension)}
        self._escaped = {n.id for n in ast.walk(tree)
                         if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and id(n) not in iters}

    def _bind(self, name: str, values: list[str] | None) -> None:
        if name in self.values and (self.values[name] is None or values is None):
            self.values[name] = None
        else:
            self.values[name] = [*self.values.get(name, []), *values] if values is not None else None

    @staticmethod
    def _constants(node: ast.AST) -> list[str] | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            out = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            return out if len(out) == len(node.elts) else None
        return None

    def _target(self, target: ast.AST, values: list[str] | None) -> None:
        for n in ast.walk(target):
            if isinstance(n, ast.Name):
                self._handled.add(id(n))
                self._bind(n.id, values if isinstance(target, ast.Name) else None)

    def _iterated(self, node: ast.AST) -> list[str] | None:
        """The strings a loop over ``node`` gives: a literal list, or a name bound to one and used for nothing else."""
        if isinstance(node, ast.Name):
            return None if node.id in self._escaped else self.lists.get(node.id)
        return self._constants(node) if not isinstance(node, ast.Constant) else None

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            self._target(t, self._constants(node.value) if isinstance(node.value, ast.Constant) else None)
            if isinstance(t, ast.Name):
                items = None if isinstance(node.value, ast.Constant) else self._constants(node.value)
                self.lists[t.id] = items if t.id not in self.lists else None
            if isinstance(t, ast.Name) and isinstance(node.value, ast.Attribute) and node.value.attr == "grad_fn":
                self.grad_fn_names.add(t.id)
        self.generic_visit(node)

    def visit_For(self, node: ast.For | ast.AsyncFor | ast.comprehension) -> None:
        self._target(node.target, self._iterated(node.iter))
        self.generic_visit(node)

    visit_AsyncFor = visit_comprehension = visit_For  # noqa: N815 - ast.NodeVisitor's naming

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del) and id(node) not in self._handled:
            self._bind(node.id, None)  # bound some other way (with ... as, :=, +=, del)
            self.lists[node.id] = None

    def _unknown(self, *names: str | None) -> None:
        for name in names:
            if name:
                self._bind(name, None)
                self.lists[name] = None

    def visit_arg(self, node: ast.arg) -> None:
        self._unknown(node.arg)

    def visit_alias(self, node: ast.alias) -> None:
        self._unknown((node.asname or node.name).split(".")[0])

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._unknown(node.name)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._unknown(node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef  # noqa: N815 - ast.NodeVisitor's naming

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        self._unknown(*node.names)

    visit_Nonlocal = visit_Global  # noqa: N815 - ast.NodeVisitor's naming


class _Visitor(ast.NodeVisitor):
    """One cell's findings; reads and updates the ``Screen``'s names."""

    def __init__(self, screen: Screen, tree: ast.AST) -> None:
        self.screen = screen
        self.findings: list[Finding] = []
        self.called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        self.assigned = {id(t) for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign)
                         for t in (n.targets if isinstance(n, ast.Assign) else [n.target])}
        self.strings = _StringBindings(tree)
        self.strings.visit(tree)

    def add(self, node: ast.AST, rule: str, what: str) -> None:
        self.findings.append(Finding(getattr(node, "lineno", 0), f"{what}: {RULES[rule]}", rule))

    # --- imports ---

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            bound = (alias.asname or alias.name).split(".")[0]
            refusal = _module_refusal(alias.name)
            if refusal:
                self.add(node, *refusal)
                # a name bound to the machinery stays refused in later cells (the setup cell's sys);
                # a module that is merely unused by the exercises (ipywidgets) does not
                if (alias.asname or "." not in alias.name) and (
                        refusal[0] != "import" or alias.name.split(".")[0] in REFUSED_MODULES):
                    self.screen.machinery.add(bound)
            self.screen.modules.add(bound)
            if alias.name == "os":
                self.screen.os_names.add(alias.asname or "os")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        if node.level:
            self.add(node, "import", "a relative import")
        if mod == "__future__":
            for alias in node.names:
                if alias.name not in HARMLESS_FUTURES:
                    self.add(node, "future", f"from __future__ import {alias.name}")
            return
        refusal = _module_refusal(mod)
        if refusal:
            self.add(node, *refusal)
        for alias in node.names:
            bound = alias.asname or alias.name
            if alias.name == "*":
                self.add(node, "import", f"from {mod} import * (name what you use)")
                continue
            if not refusal:
                why = _attribute_refusal(alias.name, mod.split(".")[0], mod in self.screen.os_names)
                sub = _module_refusal(f"{mod}.{alias.name}") if mod.split(".")[0] in ("torch", "numpy") else None
                if why is None and sub and sub[0] in ("internals", "concurrency"):
                    why = sub
                if why is None and alias.name == "Function" and mod.startswith("torch.autograd"):
                    self.screen.autograd_functions.add(bound)
                if why:
                    self.add(node, why[0], f"from {mod} import {alias.name}: " + why[1])
                    self.screen.machinery.add(bound)
            if alias.name in _OPERATOR_FAMILY and mod == "operator":
                self.screen.operator_names[bound] = alias.name
            self.screen.modules.add(bound)

    # --- names and attributes ---

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name in REFUSED_BUILTINS:
            self.add(node, "builtin", f"use of {REFUSED_BUILTINS[name]}")
        elif name in self.screen.machinery and isinstance(node.ctx, ast.Load):
            what = "an IPython magic, shell command or help (%, !, ?)" if name == "get_ipython" else f"use of {name}"
            self.add(node, "machinery-name", what)
        elif _is_dunder(name) and name not in READ_DUNDER_NAMES:
            self.add(node, "dunder", f"use of {name}")
        elif (name in _GETATTR_FAMILY or name in self.screen.operator_names) and id(node) not in self.called:
            self.add(node, "attr-function", f"{name} passed as a value (call it with the name written out)")
        elif name in self.strings.grad_fn_names and id(node) in self.called:
            self.add(node, "autograd-node", f"an autograd node called by hand ({name}(...))")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr, root = node.attr, _root_name(node)
        on_os = isinstance(node.value, ast.Name) and node.value.id in self.screen.os_names
        refusal = _attribute_refusal(attr, root, on_os)
        if refusal and id(node) in self.assigned and refusal[0] == "private" and root in self.screen.modules:
            refusal = None  # reported as patching by the assignment
        if refusal:
            self.add(node, refusal[0], f"{_clip(ast.unparse(node))}, {refusal[1]}")
        elif _is_dunder(attr) and id(node) in self.assigned:
            self.add(node, "dunder-write", f"an assignment to {attr}")
        elif attr == "graph" and isinstance(node.value, ast.Attribute) and node.value.attr == "autograd":
            self.add(node, "internals", "torch.autograd.graph (hooks on autograd's graph)")
        elif attr in _OPERATOR_FAMILY and id(node) not in self.called:
            self.add(node, "attr-function", f"{attr} passed as a value (call it with the name written out)")
        elif attr == "grad_fn" and id(node) in self.called:
            self.add(node, "autograd-node", "an autograd node called by hand (.grad_fn(...))")
        elif isinstance(node.value, ast.Attribute) and node.value.attr == "grad_fn" and attr != "name":
            self.add(node, "autograd-node", f"an autograd node used by hand (.grad_fn.{attr})")
        elif isinstance(node.value, ast.Name) and node.value.id in self.strings.grad_fn_names and attr != "name":
            self.add(node, "autograd-node", f"an autograd node used by hand ({node.value.id}.{attr})")
        self.generic_visit(node)

    # --- assignments: patching ---

    def _target(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Attribute | ast.Subscript):
            text = ast.unparse(target)
            if _root_name(target) in self.screen.modules and not any(s in text for s in SETTINGS):
                self.add(node, "patch", f"an assignment to {text}")
        elif isinstance(target, ast.Tuple | ast.List | ast.Starred):
            for t in getattr(target, "elts", [getattr(target, "value", None)]):
                if t is not None:
                    self._target(t, node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            self._target(t, node)
        # names bound to a module or something taken from one (Tensor = torch.Tensor) are tracked
        if _root_name(node.value) in self.screen.modules and not isinstance(node.value, ast.Call):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.screen.modules.add(t.id)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            if isinstance(t, ast.Attribute) and _root_name(t) in self.screen.modules:
                self.add(node, "patch", f"deleting {ast.unparse(t)}")
        self.generic_visit(node)

    # --- definitions ---

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name = node.name
        if _is_dunder(name) and name not in ALLOWED_DEFINED_DUNDERS:
            self.add(node, "dunder-def", f"a class defining {name}")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast.NodeVisitor's naming

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            text = ast.unparse(base)
            if text in self.screen.autograd_functions or ("autograd" in text and text.endswith("Function")):
                self.add(node, "autograd-node", f"a hand-made autograd function (class {node.name}({text}))")
        self.generic_visit(node)

    # --- calls ---

    def _name_string(self, node: ast.Call, arg: ast.AST, obj: ast.AST | None, dotted: bool,
                     write: bool = False) -> None:
        """An attribute named by the string ``arg`` is judged as that attribute (``getattr(x, "y")`` as ``x.y``)."""
        root = _root_name(obj) if obj is not None else None
        on_os = isinstance(obj, ast.Name) and obj.id in self.screen.os_names
        values = self.strings.values.get(arg.id) if isinstance(arg, ast.Name) else None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            values = [arg.value]
        if values is not None:
            for value in values:
                for part in value.split(".") if dotted else [value]:
                    why = _attribute_refusal(part, root, on_os)
                    if why is None and write and _is_dunder(part):
                        why = ("dunder-write", f"an assignment to {part}")
                    if why:
                        self.add(node, why[0], f"{why[1]}, named by the string {value!r}")
            return
        prefix = _safe_prefix(arg)
        if prefix and not prefix.startswith("_") and not any(n.startswith(prefix) for n in _REFUSED_ATTRIBUTE_NAMES):
            if not dotted or "." not in prefix:
                return
        self.add(node, "name-string", f"an attribute named by the computed string {ast.unparse(arg)}")

    def _allowed_magic(self, node: ast.Call) -> bool:
        """``get_ipython().run_line_magic / run_cell_magic`` of an allowed magic: its code screened here."""
        f = node.func
        if not (isinstance(f, ast.Attribute) and f.attr in ("run_line_magic", "run_cell_magic")
                and isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Name)
                and f.value.func.id == "get_ipython" and not f.value.args and not f.value.keywords
                and not node.keywords and len(node.args) == (2 if f.attr == "run_line_magic" else 3)
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)):
            return False
        name, *rest = (a.value for a in node.args)
        if f.attr == "run_line_magic":
            kind = ALLOWED_LINE_MAGICS.get(name)
            if kind == "word":
                return re.fullmatch(r"[\w-]*", rest[0].strip()) is not None
            codes = [rest[0][_MAGIC_OPTIONS.match(rest[0]).end():]] if kind == "code" else None
        else:
            line, body = rest
            if name not in ALLOWED_CELL_MAGICS:
                return False
            head = line[_MAGIC_OPTIONS.match(line).end():]
            codes = [body] + ([head] if name == "timeit" and head.strip() else [])
            if name == "capture" and not re.fullmatch(r"\s*(?:--no-std(?:out|err)\s+|--no-display\s+)*\w*\s*", line):
                return False
        if codes is None:
            return False
        for code in codes:
            try:
                tree = compile(code, "<magic>", "exec", self.screen.compiler.flags | ast.PyCF_ONLY_AST,
                               dont_inherit=True)
            except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as err:
                self.add(node, "unparsable", f"the code of %{name} does not compile ({type(err).__name__})")
                continue
            inner = _Visitor(self.screen, tree)
            inner.visit(tree)
            self.findings += [Finding(node.lineno, g.what, g.rule) for g in inner.findings]
        return True

    def visit_Call(self, node: ast.Call) -> None:
        if self._allowed_magic(node):
            return
        func = node.func
        fname = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        for k in node.keywords:  # np.memmap(path, mode="w+") and the like (nn.Upsample(mode="nearest") is no file)
            if (fname != "open" and k.arg == "mode" and isinstance(k.value, ast.Constant)
                    and isinstance(k.value.value, str) and re.fullmatch(r"[rwxabt+]{1,4}", k.value.value)
                    and set(k.value.value) & set("wax+")):
                self.add(node, "file-write", f"{fname or 'a call'}(mode={k.value.value!r}), a file opened for writing")
        if fname == "open":  # open(path, mode) or Path(...).open(mode)
            modes = [k.value for k in node.keywords if k.arg == "mode"]
            at = 1 if isinstance(func, ast.Name) else 0
            mode = node.args[at] if len(node.args) > at else (modes[0] if modes else None)
            if at == 0 and not modes and not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                                              and re.fullmatch(r"[rwxabt+]{1,4}", mode.value)):
                mode = None  # Image.open(path): a path, not a mode
            if mode is not None and not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                                         and not set(mode.value) & set("wax+")):
                self.add(node, "file-write", "open() for writing")
        if isinstance(func, ast.Name) and fname in _GETATTR_FAMILY:
            if len(node.args) >= 2:
                self._name_string(node, node.args[1], node.args[0], dotted=False, write=fname != "getattr")
            elif node.args or node.keywords:
                self.add(node, "name-string", f"{fname} without a name the screen can read")
            if fname != "getattr" and node.args and _root_name(node.args[0]) in self.screen.modules:
                self.add(node, "patch", f"{fname} on {ast.unparse(node.args[0])}")
        op = (self.screen.operator_names.get(fname) if isinstance(func, ast.Name) else
              fname if isinstance(func, ast.Attribute) and fname in _OPERATOR_FAMILY else None)
        if op is not None:
            args = node.args if op == "attrgetter" else node.args[:1]
            if not args:
                self.add(node, "name-string", f"{op} without a name the screen can read")
            for a in args:
                if isinstance(a, ast.Starred):
                    self.add(node, "name-string", f"{fname} with names the screen cannot read")
                else:
                    self._name_string(node, a, None, dotted=op == "attrgetter")
        if isinstance(func, ast.Name) and fname == "type" and len(node.args) == 3:
            self.add(node, "builtin", "type() with three arguments (a class built at run time)")
        self.generic_visit(node)


class Screen:
    """Screens a notebook's cells in order, as IPython compiles them.

    It keeps what earlier cells established: the names bound to modules (``torch``, ``F``: patching
    them is refused), names bound to the interpreter's machinery (the setup cell's ``sys``), and the
    ``__future__`` flags IPython's compiler accumulates. ``learn`` takes a trusted cell (the course's
    own) for its names only; ``screen`` returns a student cell's findings.
    """

    def __init__(self, known_modules: Iterable[str] = ()) -> None:
        self.modules: set[str] = set(known_modules)
        self.machinery: set[str] = set(MACHINERY_NAMES)
        self.os_names: set[str] = {"os"}
        self.operator_names: dict[str, str] = {}  # local name -> attrgetter / methodcaller
        self.autograd_functions: set[str] = set()
        self.compiler = codeop.Compile()  # its flags accumulate like IPython's CachingCompiler's

    def _parse(self, source: str) -> tuple[ast.Module | None, str, list[Finding]]:
        try:
            python = _python_source(source)
        except Exception as err:  # noqa: BLE001 - whatever IPython's transformers raise: unreadable
            return None, source, [Finding(1, f"IPython could not read the cell ({type(err).__name__}): "
                                             f"{RULES['unparsable']}", "unparsable")]
        try:
            tree = compile(python, "<cell>", "exec", self.compiler.flags | ast.PyCF_ONLY_AST, dont_inherit=True)
        except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as err:
            line = getattr(err, "lineno", None) or 1
            msg = getattr(err, "msg", None) or str(err)
            return None, python, [Finding(line, f"the cell does not compile ({type(err).__name__}: {msg}): "
                                                f"{RULES['unparsable']}", "unparsable")]
        return tree, python, []

    def _learn_flags(self, python: str) -> None:
        """The ``__future__`` flags this cell leaves in IPython's compiler (when it compiles)."""
        try:
            self.compiler(python, "<cell>", "exec")
        except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
            pass

    def screen(self, source: str) -> list[Finding]:
        """What in ``source`` (one student cell) an honest answer never needs; [] when it may run."""
        tree, python, findings = self._parse(source)
        if tree is None:
            return findings
        visitor = _Visitor(self, tree)
        try:
            visitor.visit(tree)
        except RecursionError:
            return [Finding(1, f"the cell nests too deeply to read: {RULES['unparsable']}", "unparsable")]
        out: list[Finding] = []
        for f in visitor.findings:
            if all((f.line, f.what) != (g.line, g.what) for g in out):
                out.append(f)
        if not out:  # a refused cell is not run: its future imports never reach the compiler
            self._learn_flags(python)
        return out

    def learn(self, source: str) -> None:
        """A trusted cell (the course's own): record its names and flags, refuse nothing."""
        tree, python, _ = self._parse(source)
        if tree is None:
            return
        visitor = _Visitor(self, tree)
        try:
            visitor.visit(tree)
        except RecursionError:
            return
        self._learn_flags(python)


def screen_source(source: str, known_modules: set[str] | None = None) -> list[Finding]:
    """What in ``source`` (one cell) an honest answer never needs; [] for a clean cell.

    Stateless: a fresh ``Screen`` per cell. ``known_modules`` holds the names earlier cells bound to
    modules (``torch``, ``F``, ``nn``), so patching them here is recognised; it is updated with this
    cell's imports. A notebook read in order should use ``Screen`` (it also carries ``__future__``
    flags from cell to cell; without it a refused ``from __future__`` import never runs, so later
    cells compile with the default flags, as screened here).
    """
    screen = Screen(known_modules or ())
    findings = screen.screen(source)
    if known_modules is not None:
        known_modules |= screen.modules
    return findings


#: names every lesson's locked cells bind to modules (torch, nn, F, np, plt, ...), for the screen
COMMON_MODULE_NAMES = frozenset({"torch", "nn", "F", "np", "plt", "optim", "math", "torchvision", "transforms",
                                 "functools", "itertools", "os", "Path", "scipy", "Tensor"})
