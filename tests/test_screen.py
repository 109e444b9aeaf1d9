"""The static screen against hostile cells, rule by rule, and how it reads cells (as IPython compiles them).

Every case here is a way to reach past the sandbox or the probe/judge split (or something no answer
of this course needs), written from the rule it belongs to; each must be refused under that rule,
with a one-line message. The honest side is tests/test_honest_corpus.py (every corpus answer passes);
HONEST_IDIOMS below are the idioms a screen rule is most likely to catch by mistake.
"""

from __future__ import annotations

import pytest

from autograder.screen import COMMON_MODULE_NAMES, RULES, Screen, screen_source

#: the names a lesson's locked cells bind before any student cell (setup cell included)
SETUP = ("import importlib, importlib.util, subprocess, sys\nimport torch\nimport torch.nn.functional as F\n"
         "from torch import nn\nimport numpy as np\nimport matplotlib.pyplot as plt\n")

HOSTILE: list[tuple[str, str]] = [
    # internals: what switches the in-process refusal off
    ("internals", "torch._C._set_grad_enabled(False)"),
    ("internals", "from torch.utils._python_dispatch import _disable_current_modes"),
    ("internals", "import torch._dynamo"),
    ("internals", "y = torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)"),
    ("internals", "lib = torch.library.Library('aten', 'IMPL')"),
    ("internals", "from torch.autograd.graph import saved_tensors_hooks"),
    ("internals", "h = torch.autograd.graph.register_multi_grad_hook((x,), print)"),
    ("internals", "from torch import _C"),
    ("internals", "guard = F._C._DisableTorchDispatch()"),
    # module-through-module
    ("module-through-module", "mods = np.core.sys.modules"),
    ("module-through-module", "import collections.abc\ncollections.abc.sys.modules.clear()"),
    ("module-through-module", "torch.hub.subprocess.run(['true'])"),
    ("module-through-module", "import scipy.linalg\nscipy.linalg.importlib.import_module('dcgan_ref')"),
    ("module-through-module", "from typing import sys as s"),
    ("module-through-module", "fd = torch.serialization.os.open('/proc/self/fd/3', 1)"),
    ("module-through-module", "data = torch.serialization.pickle.loads(b'')"),
    ("module-through-module", "b = plt.builtins.__import__"),
    ("module-through-module", "g = getattr(F, 'importlib')"),
    # the setup cell's machinery, IPython's magics
    ("machinery-name", "sys.modules['autograder.checks'] = None"),
    ("machinery-name", "reload = importlib.reload"),
    ("machinery-name", "subprocess.Popen(['python', '-c', 'pass'])"),
    ("machinery-name", "ip = get_ipython()"),
    ("machinery-name", "%load_ext autoreload"),
    ("machinery-name", "%%writefile sitecustomize.py\nimport os"),
    ("machinery-name", "%timeit get_ipython().system('ls')"),
    ("machinery-name", "!pip install dcgan-course"),
    ("machinery-name", "%%bash\nls"),
    ("machinery-name", "torch.conv2d?"),
    ("machinery-name", "def helper(mods=sys.modules):\n    return mods"),
    # built-ins that run or reach unreadable code
    ("builtin", "eval('1 + 1')"),
    ("builtin", "exec(source)"),
    ("builtin", "code = compile('x = 1', '<s>', 'exec')"),
    ("builtin", "g = globals()['__builtins__']"),
    ("builtin", "v = vars(torch)['sys']"),
    ("builtin", "os_mod = __import__('os')"),
    ("builtin", "Fake = type('Fake', (torch.Tensor,), {})"),
    ("builtin", "locals()['x'] = 1"),
    # dunders that reach the machinery
    ("dunder", "g = conv2d_scratch.__globals__"),
    ("dunder", "subs = ().__class__.__base__.__subclasses__()"),
    ("dunder", "d = torch.__dict__"),
    ("dunder", "val = x.__getattribute__('grad')"),
    ("dunder", "code = f.__code__"),
    ("dunder", "r = m.__reduce_ex__(2)"),
    ("dunder", "spec = __spec__"),
    ("dunder", "cls = type(x).__mro__[-1]"),
    ("dunder", "init_globals = m.__class__.__init__.__globals__"),
    # writing special attributes
    ("dunder-write", "x.__class__ = FakeTensor"),
    ("dunder-write", "setattr(t, '__class__', FakeTensor)"),
    ("dunder-write", "relu.__name__ = 'relu'\nrelu.__doc__ = 'x'"),
    # classes that fool a probe
    ("dunder-def", "class Always(float):\n    def __eq__(self, other):\n        return True"),
    ("dunder-def", "class T(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls, f, t, a=(), k=None):\n"
                   "        return 0"),
    ("dunder-def", "class Lazy:\n    def __getattr__(self, name):\n        return 0"),
    ("dunder-def", "class Meta(type):\n    def __instancecheck__(cls, obj):\n        return True"),
    ("dunder-def", "class Boom:\n    def __reduce__(self):\n        return (print, ('x',))"),
    ("dunder-def", "class Gone:\n    def __del__(self):\n        pass"),
    ("dunder-def", "class Num:\n    def __float__(self):\n        return 1.0"),
    # private parts of what is not the student's own
    ("private", "hooks = nn.modules.module._global_forward_hooks"),
    ("private", "m._forward_hooks.clear()"),
    ("private", "F._in_projection_packed"),
    ("private", "x = np._NoValue"),
    # attributes named by strings
    ("name-string", "C = getattr(torch, '_' + 'C')"),
    ("name-string", "m = getattr(torch, ''.join(['s', 'y', 's']))"),
    ("name-string", "def get(name):\n    return getattr(nn, name)"),
    ("name-string", "a = getattr(torch, 'o' + 's')"),
    ("name-string", "a = getattr(x, f'{prefix}globals__')"),
    ("name-string", "import operator\nget = operator.attrgetter(*parts)"),
    ("name-string", "import operator\nf = operator.methodcaller(name)"),
    ("private", "import operator\nflag = operator.attrgetter('_C._DisableTorchDispatch')(torch)"),
    ("dunder", "import operator\nsubs = operator.methodcaller('__subclasses__')(object)"),
    ("dunder", "from operator import attrgetter as ag\ng = ag('__globals__')(f)"),
    ("module-through-module", "names = ['sys', 'modules']\nfor n in names:\n    obj = getattr(torch, n)"),
    ("internals", "for part in ('_C', 'x'):\n    obj = getattr(torch, part)"),
    ("name-string", "names = ['ReLU']\nnames.append('_C')\nfor n in names:\n    obj = getattr(torch, n)"),
    ("name-string", "n = 'ReLU'\nif (n := secret):\n    obj = getattr(torch, n)"),
    ("name-string", "n = 'ReLU'\nn += suffix\nobj = getattr(torch, n)"),
    ("name-string", "n = 'ReLU'\nfor n in parts:\n    obj = getattr(torch, n)"),
    ("name-string", "n = 'ReLU'\ntry:\n    pass\nexcept Exception as n:\n    obj = getattr(torch, n)"),
    # getattr-like functions passed as values
    ("attr-function", "import functools\nobj = functools.reduce(getattr, ['_C', '_DisableTorchDispatch'], torch)"),
    ("attr-function", "vals = list(map(getattr, objs, names))"),
    ("attr-function", "g = getattr\ng(torch, 'x')"),
    ("attr-function", "import operator\nf = apply(operator.attrgetter, 'x')"),
    ("attr-function", "from operator import methodcaller as mc\nfs = map(mc, names)"),
    # threads and processes
    ("concurrency", "import threading"),
    ("concurrency", "from concurrent.futures import ThreadPoolExecutor"),
    ("concurrency", "from multiprocessing import Pool"),
    ("concurrency", "from joblib import Parallel, delayed"),
    ("concurrency", "from tqdm.contrib.concurrent import process_map"),
    ("concurrency", "from sklearn.utils import Parallel"),
    ("concurrency", "import torch.multiprocessing as mp"),
    ("concurrency", "torch.multiprocessing.spawn(run, nprocs=2)"),
    ("concurrency", "import _thread"),
    ("concurrency", "from sklearn.utils.parallel import delayed"),
    ("concurrency", "import asyncio"),
    # autograd's nodes by hand, hand-made autograd functions
    ("autograd-node", "gx = y.grad_fn(torch.ones_like(y))"),
    ("autograd-node", "fn = y.grad_fn.next_functions[0][0]"),
    ("autograd-node", "node = y.grad_fn\ngrads = node(g)"),
    ("autograd-node", "out = y.grad_fn.apply(g)"),
    ("autograd-node", "class Sig(torch.autograd.Function):\n    @staticmethod\n    def forward(ctx, x):\n"
                      "        return x"),
    ("autograd-node", "from torch.autograd import Function\nclass Sig(Function):\n    pass"),
    ("autograd-node", "class Sig(torch.autograd.function.InplaceFunction):\n    pass"),
    # patching what the checks call
    ("patch", "F.conv2d = lambda *a, **k: None"),
    ("patch", "torch.allclose = lambda *a, **k: True"),
    ("patch", "nn.Module.__call__ = nn.Module.forward"),
    ("patch", "setattr(F, 'relu', lambda x: x)"),
    ("patch", "del torch.nn.functional.relu"),
    ("patch", "np.testing.assert_allclose = print"),
    ("patch", "torch.Tensor.sum, torch.Tensor.mean = f, g"),
    ("patch", "T = torch.Tensor\nT.add = lambda a, b: a"),
    # processes, signals, environment, descriptors
    ("process", "import os\nos.system('ls')"),
    ("process", "import os\nos.environ['OMP_NUM_THREADS'] = '1'"),
    ("process", "import os\nos.kill(os.getpid(), 9)"),
    ("process", "from os import system"),
    ("process", "import os\nos.write(5, b'{}')"),
    ("process", "import os as o\nfd = o.dup2(1, 2)"),
    ("process", "import os\npid = os.fork()"),
    # file writes
    ("file-write", "open('autograder/__init__.py', 'w').write('')"),
    ("file-write", "from pathlib import Path\nPath('sitecustomize.py').write_text('import os')"),
    ("file-write", "with open(path, mode='a') as f:\n    f.write('x')"),
    ("file-write", "open(p, flags)"),
    ("file-write", "from pathlib import Path\nwith Path('autograder/__init__.py').open('w') as f:\n    f.write('')"),
    ("file-write", "from pathlib import Path\nf = (Path('x') / 'y.py').open(mode='a')"),
    ("file-write", "m = np.memmap('/proc/self/fd/5', dtype='uint8', mode='r+', shape=(4,))"),
    # modules no answer needs
    ("import", "import dcgan_ref"),
    ("import", "from dcgan_ref.models import weights_init"),
    ("import", "import pickle"),
    ("import", "import ctypes"),
    ("import", "from autograder.checks import _core"),
    ("import", "import inspect"),
    ("import", "import gc"),
    ("import", "from . import x"),
    ("import", "from torch.nn import *"),
    ("import", "import requests"),
    # __future__ imports that change how later cells compile
    ("future", "from __future__ import barry_as_FLUFL"),
    ("future", "from __future__ import annotations, barry_as_FLUFL"),
    # cells that do not compile
    ("unparsable", "def f(:\n    pass"),
    ("unparsable", "ok = 1 <> 2"),
    ("unparsable", "return 1 +"),
    ("unparsable", "x = " + "(" * 300 + "1" + ")" * 300),  # nested deeper than the parser allows
]


def _screen(source: str):
    screen = Screen(COMMON_MODULE_NAMES)
    screen.learn(SETUP)
    return screen.screen(source)


@pytest.mark.parametrize(("rule", "source"), HOSTILE, ids=[f"{r}-{i}" for i, (r, _) in enumerate(HOSTILE)])
def test_hostile_cell_is_refused_under_its_rule(rule, source):
    findings = _screen(source)
    assert findings, "the screen lets it through"
    assert rule in {f.rule for f in findings}, [(f.rule, str(f)) for f in findings]
    for f in findings:
        assert "\n" not in str(f) and len(str(f)) < 300, str(f)
        assert f.rule in RULES and str(f).startswith(f"line {f.line}: ")


def test_every_rule_has_hostile_cases():
    counts = {rule: sum(r == rule for r, _ in HOSTILE) for rule in RULES}
    assert all(n >= 1 for n in counts.values()), counts


# --- reading cells as IPython compiles them ---


def test_future_flags_carry_from_cell_to_cell_like_ipython():
    """A future import in an earlier (trusted) cell changes how later cells parse, as in IPython."""
    screen = Screen(COMMON_MODULE_NAMES)
    assert screen.screen("ok = 1 <> 2")[0].rule == "unparsable"
    screen.learn("from __future__ import barry_as_FLUFL")
    assert screen.screen("ok = 1 <> 2") == []
    assert screen.screen("ok = 1 != 2")[0].rule == "unparsable"  # what IPython would refuse now


def test_a_refused_future_import_is_not_learned():
    """The student's own barry_as_FLUFL is refused (never run), so the next cell compiles with the default flags."""
    screen = Screen(COMMON_MODULE_NAMES)
    assert screen.screen("from __future__ import barry_as_FLUFL")[0].rule == "future"
    assert screen.screen("ok = 1 <> 2")[0].rule == "unparsable"
    assert screen.screen("ok = 1 != 2") == []


def test_harmless_future_import_passes_and_stays():
    screen = Screen(COMMON_MODULE_NAMES)
    assert screen.screen("from __future__ import annotations") == []
    assert screen.screen("def f(x: Undefined) -> Undefined:\n    return x") == []


def test_magics_are_read_as_the_calls_ipython_makes():
    for cell in ("%env X=1", "!ls", "relu??", "%load_ext autoreload", "%run other.py", "%%bash\nls",
                 "%%writefile autograder/__init__.py\nx = 1", "%matplotlib inline; import os", "%pip install x",
                 "%%capture out; import sys\nx = 1", "%config InlineBackend.figure_format = 'svg'"):
        magic = [f for f in _screen(cell) if f.rule == "machinery-name"]
        assert magic and "magic" in str(magic[0]), cell


def test_timing_and_plot_magics_pass_with_their_code_screened():
    for cell in ("%timeit relu(x)", "%timeit -n 10 -r 3 conv(x, w)", "%%time\ny = relu(x)\nprint(y)",
                 "%matplotlib inline", "%%timeit -n5 x = torch.randn(3)\nrelu(x)", "%%capture out\nprint(1)",
                 "%time out = F.relu(torch.randn(2))"):
        assert _screen(cell) == [], cell
    assert [f.rule for f in _screen("%timeit sys.modules")] == ["machinery-name"]
    assert [f.rule for f in _screen("%%time\nimport inspect")] == ["import"]
    assert [f.rule for f in _screen("%%timeit x = torch._C\nrelu(x)")] == ["internals"]
    assert [f.rule for f in _screen("%time getattr(torch, name)")] == ["name-string"]
    assert [f.rule for f in _screen("%timeit def (")] == ["unparsable"]


def test_unparsable_cell_is_refused_with_the_line_and_the_error():
    findings = _screen("x = 1\ny = (2 +\n")
    assert len(findings) == 1 and findings[0].rule == "unparsable"
    assert "SyntaxError" in str(findings[0]) and "\n" not in str(findings[0])


def test_screen_source_is_stateless_but_learns_module_names():
    modules = {"torch"}
    assert screen_source("import torch.nn.functional as G", modules) == []
    assert "G" in modules
    assert screen_source("G.relu = print", modules)[0].rule == "patch"
    assert screen_source("import sys", modules)[0].rule == "import"


# --- the idioms a rule could catch by mistake ---

HONEST_IDIOMS = [
    "def weights_init(m):\n    classname = m.__class__.__name__\n    if classname.find('Conv') != -1:\n"
    "        nn.init.normal_(m.weight.data, 0.0, 0.02)",
    "name = type(m).__name__\nqual = m.__class__.__qualname__\nprint(torch.__version__, f.__doc__, m.__module__)",
    "layers = [getattr(nn, 'ReLU')(), getattr(nn, 'Tanh')()]",
    "for act in ('ReLU', 'LeakyReLU'):\n    layer = getattr(nn, act)()",
    "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        for i in range(3):\n            setattr(self, f'conv{i}', nn.Conv2d(1, 1, 1))\n"
    "    def forward(self, x):\n        return getattr(self, f'conv{0}')(x)\n"
    "    def __repr__(self):\n        return f'{self.__class__.__name__}()'",
    "from dataclasses import dataclass, field\n@dataclass\nclass C:\n    lr: float = 2e-4\n"
    "    betas: tuple = field(default=(0.5, 0.999))\n    def __post_init__(self):\n        assert self.lr > 0",
    "print(f'{x!r} {y!s} {z!a}')",
    "if __name__ == '__main__':\n    G.apply(weights_init)\n    nn.Module.apply(D, weights_init)",
    "ok = hasattr(m, 'bias') and m.bias is not None and hasattr(m, name)",
    "import operator\nfrom functools import reduce\nn = reduce(operator.mul, x.shape, 1)\n"
    "best = sorted(rows, key=operator.itemgetter('loss'))",
    "torch.backends.cudnn.benchmark = True\nplt.rcParams['figure.dpi'] = 100",
    "def forward(self, input):\n    return self.main(input)",
    "import os\nos.makedirs('runs', exist_ok=True)\npath = os.path.join('runs', 'ckpt.pt')",
    "from torch.utils.data import DataLoader, TensorDataset\nfrom tqdm.auto import tqdm",
    "print(y.grad_fn, y.grad_fn is None, y.grad_fn.name())",
    "from __future__ import annotations",
    "from pathlib import Path\nwith Path('metrics.csv').open() as f:\n    rows = f.read()\n"
    "with open('notes.txt', 'r') as g:\n    pass",
    "from PIL import Image\nimg = Image.open('examples/x.png')\nimg2 = Image.open(path).convert('RGB')",
    "up = nn.Upsample(scale_factor=2, mode='nearest')\ny = F.interpolate(x, scale_factor=2, mode='bilinear')\n"
    "a = np.load('x.npy', mmap_mode='r')\nrgb = img.convert(mode='RGB')",
]


@pytest.mark.parametrize("source", HONEST_IDIOMS)
def test_honest_idiom_passes(source):
    assert _screen(source) == []


def test_names_the_course_binds_to_the_machinery_stay_refused():
    """A locked cell's ``import subprocess as sp`` makes ``sp`` refused in the student's cells; a module the
    exercises merely do not use (the lesson's ipywidgets) stays usable in scratch cells."""
    screen = Screen(COMMON_MODULE_NAMES)
    screen.learn("import ipywidgets as widgets\nimport subprocess as sp\nimport threading")
    assert [f.rule for f in screen.screen("sp.run(['ls'])")] == ["machinery-name"]
    assert "concurrency" in {f.rule for f in screen.screen("t = threading.Thread(target=print)")}
    assert screen.screen("slider = widgets.IntSlider(min=1, max=5)") == []


def test_every_rule_is_documented_with_its_reason():
    import autograder.screen as screen_module

    for rule, reason in RULES.items():
        assert f"``{rule}``" in screen_module.__doc__, rule
        assert reason and "\n" not in reason
