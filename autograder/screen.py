"""Static screening of the code a student wrote, before any of it runs in the grading worker.

An honest answer to these exercises needs tensors, arithmetic and ``torch.nn``; it never needs
the reference (``dcgan_ref``), the interpreter's machinery (``sys``, ``importlib``, ``inspect``,
``gc``, ``ctypes``, ``builtins``, ``exec``/``eval``/``compile``, dunder attributes), IPython's
(``get_ipython``), torch's internals (``torch.ops``, ``torch._C``, ``torch.library``), processes
(``subprocess``, ``os.system``, ``signal``), file writes outside ``torch.save``, or patching an
imported module (``F.conv2d = ...``). A cell that uses any of these is not run; its exercise
scores 0 with a message naming what is not allowed, and the report flags the submission for an
instructor's review. The rules are about *means*, not answers: every correct variant (loops,
``unfold``, ``einsum``, ``nn.Sequential`` or named modules, ``scipy.linalg.sqrtm``) passes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

#: top-level modules an answer may import
ALLOWED_MODULES = frozenset({
    "math", "cmath", "numbers", "random", "itertools", "functools", "collections", "typing", "dataclasses",
    "enum", "abc", "copy", "operator", "statistics", "string", "re", "time", "warnings", "decimal", "fractions",
    "heapq", "bisect", "contextlib", "numpy", "torch", "torchvision", "scipy", "matplotlib", "PIL", "tqdm",
    "sklearn", "pathlib", "os", "json", "csv", "__future__",
})
#: module prefixes refused even under an allowed top-level module
REFUSED_MODULE_PREFIXES = (
    "torch._", "torch.ops", "torch.library", "torch.overrides", "torch.utils._", "torch.fx", "torch.jit",
    "torch.compiler", "torch.testing", "numpy.ctypeslib", "os.path._",
)
#: names whose use is refused wherever they appear
REFUSED_NAMES = {
    "exec": "exec", "eval": "eval", "compile": "compile", "__import__": "__import__", "globals": "globals()",
    "locals": "locals()", "vars": "vars()", "setattr": "setattr", "delattr": "delattr", "breakpoint": "breakpoint",
    "get_ipython": "get_ipython", "__builtins__": "__builtins__", "memoryview": "memoryview",
    "dcgan_ref": "dcgan_ref (the reference the checks compare with)", "sys": "sys", "autograder": "autograder",
}
#: attributes refused on anything (torch.ops.aten.conv2d, torch._C, os.system, ...)
REFUSED_ATTRIBUTES = {
    "ops": "torch.ops", "library": "torch.library", "overrides": "torch.overrides",
    "system": "a shell command (os.system, !cmd)", "popen": "os.popen", "fork": "os.fork",
    "forkpty": "os.forkpty", "kill": "os.kill",
    "killpg": "os.killpg", "execv": "os.exec*", "execve": "os.exec*", "execl": "os.exec*", "execlp": "os.exec*",
    "execvp": "os.exec*", "spawnv": "os.spawn*", "spawnl": "os.spawn*", "posix_spawn": "os.posix_spawn",
    "setsid": "os.setsid", "dup": "os.dup", "dup2": "os.dup2", "putenv": "os.putenv", "environ": "os.environ",
    "chmod": "chmod", "chown": "chown", "symlink": "symlink", "unlink": "file deletion", "remove": None,
    "rmdir": "file deletion", "rmtree": "file deletion", "write_text": "a file write", "write_bytes": "a file write",
    "settrace": "sys.settrace", "setprofile": "sys.setprofile",
}
#: what an answer may use of ``os`` (paths and folders for a checkpoint, nothing that reaches a process or fd)
OS_ALLOWED = frozenset({"path", "makedirs", "listdir", "getcwd", "sep", "linesep", "cpu_count", "scandir", "stat",
                        "replace", "rename", "fspath", "PathLike", "walk", "curdir", "pardir", "extsep", "mkdir"})
#: dunder attributes an honest answer uses
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__call__", "__len__", "__getitem__", "__iter__", "__repr__",
                             "__str__", "__doc__", "__future__"})
#: dunder methods a class in an answer may define (an __eq__ that is always True is not an answer)
ALLOWED_DEFINED_DUNDERS = frozenset({"__init__", "__call__", "__repr__", "__str__", "__len__", "__getitem__",
                                     "__iter__", "__post_init__"})
#: modules that are refused outright, with the reason a message gives
REFUSED_MODULES = {
    "dcgan_ref": "dcgan_ref, the reference the checks compare with", "sys": "sys", "importlib": "importlib",
    "inspect": "inspect", "gc": "gc", "ctypes": "ctypes", "builtins": "builtins", "subprocess": "subprocess",
    "signal": "signal", "socket": "socket", "threading": "threading", "multiprocessing": "multiprocessing",
    "pickle": "pickle", "marshal": "marshal", "types": "types", "code": "code", "runpy": "runpy",
    "shutil": "shutil", "IPython": "IPython", "autograder": "autograder (the grader)", "traceback": "traceback",
    "atexit": "atexit", "resource": "resource", "pty": "pty", "mmap": "mmap", "dis": "dis",
}


@dataclass(frozen=True)
class Finding:
    """One thing an honest answer never needs, where it is (1-based line of the cell)."""

    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _python_source(source: str) -> str:
    """The cell as Python: IPython's magics (``%x``, ``!cmd``) become ``get_ipython()`` calls."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - no IPython, or a cell it cannot transform: screen as is
        return source


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _module_refusal(name: str) -> str | None:
    top = name.split(".")[0]
    if top in REFUSED_MODULES:
        return f"import of {REFUSED_MODULES[top]}"
    if any(name == p.rstrip(".") or name.startswith(p) for p in REFUSED_MODULE_PREFIXES):
        return f"import of {name} (torch's internals)"
    if top not in ALLOWED_MODULES:
        return f"import of {name} (not a module these exercises use)"
    return None


class _Screen(ast.NodeVisitor):
    def __init__(self, module_aliases: set[str]) -> None:
        self.findings: list[Finding] = []
        self.modules = module_aliases  # names bound to imported modules (and things taken from them)
        self.os_names = {"os"}

    def add(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(getattr(node, "lineno", 0), what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            why = _module_refusal(alias.name)
            if why:
                self.add(node, why)
            self.modules.add((alias.asname or alias.name).split(".")[0])
            if alias.name == "os":
                self.os_names.add(alias.asname or "os")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        if node.level:
            self.add(node, "a relative import")
        why = _module_refusal(mod)
        if why:
            self.add(node, why)
        for alias in node.names:
            full = f"{mod}.{alias.name}"
            if alias.name == "*":
                self.add(node, f"from {mod} import * (name what you use)")
            elif mod == "os" and alias.name not in OS_ALLOWED:
                self.add(node, f"os.{alias.name} (an answer uses os only for paths and folders)")
            elif alias.name.startswith("_"):
                self.add(node, f"import of the private name {full}")
            else:
                sub = _module_refusal(full) if mod.split(".")[0] in ("torch", "numpy") else None
                if sub and "internals" in sub:
                    self.add(node, sub)
            self.modules.add(alias.asname or alias.name)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in REFUSED_NAMES:
            self.add(node, f"use of {REFUSED_NAMES[node.id]}")
        elif node.id.startswith("__") and node.id.endswith("__") and node.id not in ALLOWED_DUNDERS:
            self.add(node, f"use of {node.id}")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        root = _root_name(node)
        if attr.startswith("__") and attr.endswith("__"):
            if attr not in ALLOWED_DUNDERS:
                self.add(node, f"the attribute {attr}")
        elif attr.startswith("_") and root not in ("self", "cls"):
            self.add(node, f"the private attribute .{attr}")
        elif isinstance(node.value, ast.Name) and node.value.id in self.os_names and attr not in OS_ALLOWED:
            self.add(node, f"os.{attr} (an answer uses os only for paths and folders)")
        elif attr in REFUSED_ATTRIBUTES and (attr != "remove" or root in ("os", "pathlib")):
            self.add(node, f"use of {REFUSED_ATTRIBUTES[attr] or attr}")
        self.generic_visit(node)

    def _target(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Attribute | ast.Subscript):
            if _root_name(target) in self.modules:
                self.add(node, f"an assignment to {ast.unparse(target)} (patching an imported module or class)")
        elif isinstance(target, ast.Tuple | ast.List | ast.Starred):
            for t in getattr(target, "elts", [getattr(target, "value", None)]):
                if t is not None:
                    self._target(t, node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            self._target(t, node)
        # names bound to a module or something taken from one (Tensor = torch.Tensor) are tracked
        if _root_name(node.value) in self.modules and not isinstance(node.value, ast.Call):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.modules.add(t.id)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            if isinstance(t, ast.Attribute) and _root_name(t) in self.modules:
                self.add(node, f"deleting {ast.unparse(t)} (patching an imported module or class)")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name = node.name
        if name.startswith("__") and name.endswith("__") and name not in ALLOWED_DEFINED_DUNDERS:
            self.add(node, f"a class defining {name} (an answer never redefines how Python compares or converts)")
        if name in ("__torch_function__", "__torch_dispatch__"):
            self.add(node, f"{name} (intercepting torch)")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast.NodeVisitor's naming

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            modes = [k.value for k in node.keywords if k.arg == "mode"]
            mode = node.args[1] if len(node.args) > 1 else (modes[0] if modes else None)
            if mode is not None and not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                                         and not set(mode.value) & set("wax+")):
                self.add(node, "open() for writing (save with torch.save)")
        if isinstance(func, ast.Name) and func.id == "getattr" and node.args[1:2]:
            arg = node.args[1]
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("_")):
                self.add(node, "getattr with a computed or private name")
        if isinstance(func, ast.Name) and func.id == "type" and len(node.args) == 3:
            self.add(node, "type() with three arguments (building a class dynamically)")
        self.generic_visit(node)


def screen_source(source: str, known_modules: set[str] | None = None) -> list[Finding]:
    """What in ``source`` (one cell) an honest answer never needs; [] for a clean or unparseable cell.

    ``known_modules`` holds the names earlier cells bound to modules (``torch``, ``F``, ``nn``),
    so patching them here is recognised; it is updated with this cell's imports.
    """
    modules = known_modules if known_modules is not None else set()
    try:
        tree = ast.parse(_python_source(source))
    except (SyntaxError, ValueError):
        return []  # it will fail when it runs; nothing to screen
    screen = _Screen(modules)
    screen.visit(tree)
    seen: set[tuple[int, str]] = set()
    out = []
    for f in screen.findings:
        if (f.line, f.what) not in seen:
            seen.add((f.line, f.what))
            out.append(f)
    return out


#: names every lesson's locked cells bind to modules (torch, nn, F, np, plt, ...), for the screen
COMMON_MODULE_NAMES = frozenset({"torch", "nn", "F", "np", "plt", "optim", "math", "torchvision", "transforms",
                                 "functools", "itertools", "os", "Path", "scipy", "Tensor"})
