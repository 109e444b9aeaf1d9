"""Checks for lesson 08: picking the device, a mixed-precision training epoch, exact resumption.

Each exercise is cases -> probe -> judge (``_core.exercise``):

- ``pick_device``: the probe calls the student's function with the availability functions of
  CUDA and MPS patched, so every branch runs on any machine; the judge asks
  ``dcgan_ref.train.pick_device`` the same questions in its own process.
- ``train_epoch``: the GPU half is made visible on a CPU. The probe's loader yields batches that
  record ``.to(device)``, a hook on G's output records when a gradient reaches the fakes (before
  D's step: no ``detach``), forward pre-hooks record whether autocast was on, and a recording
  ``torch.amp.GradScaler`` (a real CPU scaler, power-of-two scale, so the numbers stay exact)
  records ``scale`` / ``step`` / ``update`` and whether the scaled loss was what went backward.
  The judge runs ``dcgan_ref.train.train_step`` batch by batch on the same models and data and
  compares every parameter, buffer, the scaler's state and the mean losses. On a CUDA machine the
  hidden run also trains under autocast and compares loosely.
- ``save_checkpoint`` / ``load_checkpoint``: the probe trains a little (``dcgan_ref.train.train_step``),
  saves, wrecks the state (fresh networks, optimizers and scaler, the RNG moved on), loads and takes
  one more step; then it puts another run's state into the saved file (every state tensor swapped
  for its counterpart) and loads that: only a loader that reads the file restores it, one that kept
  the state in memory does not. What is compared exactly (restored vs saved, resumed vs uninterrupted)
  is computed in one process, the probe's; the judge checks the saved run against its own rebuild
  from the seeds to the arithmetic's accuracy (threads change the order of sums, issue 21).
- ``pick_device`` is asked each situation several times, in an order and with environment noise
  drawn from the instructor's secret, so replaying a call order seen elsewhere cannot pass.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn

import dcgan_ref.train as ref_train
from dcgan_ref.models import Discriminator, Generator, weights_init

from ._core import Outcome, attempt, exercise, expect, fail, seeded, unwrap
from ._plain import marker, type_name
from ._secret import hidden_seed

# --------------------------------------------------------------------------- pick_device

_SITUATIONS = [(True, True), (False, True), (False, False)]


@contextlib.contextmanager
def _availability(cuda: bool, mps: bool) -> Iterator[None]:
    """Pretend CUDA / MPS are (not) available while the student's code runs."""
    saved = [(torch.cuda, "is_available", torch.cuda.is_available)]
    torch.cuda.is_available = lambda: cuda  # type: ignore[assignment]
    mps_mod = getattr(torch.backends, "mps", None)
    if mps_mod is not None:
        saved.append((mps_mod, "is_available", mps_mod.is_available))
        mps_mod.is_available = lambda: mps  # type: ignore[assignment]
    try:
        yield
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)


def _mps_available() -> bool:
    mps_mod = getattr(torch.backends, "mps", None)
    return bool(mps_mod is not None and mps_mod.is_available())


def _course_helper_watch(fn: Any) -> tuple[Any, list[str]]:
    """``fn`` wrapped so that a call of the course's own ``autograder.notebook.pick_device`` (the
    setup cell's helper, the answer in disguise) is recorded; chains any profile hook already set."""
    import autograder.notebook as notebook

    target = notebook.pick_device.__code__
    hits: list[str] = []

    def run() -> Any:
        previous = sys.getprofile()

        def hook(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code is target:
                hits.append("autograder.notebook.pick_device")
            if previous is not None:
                previous(frame, event, arg)

        sys.setprofile(hook)
        try:
            return fn()
        finally:
            sys.setprofile(previous)

    run.__name__ = getattr(fn, "__name__", "pick_device")
    return run, hits


#: environment noise around a call: variables a device picker may read but that must not change its answer
#: here (torch.cuda.is_available() is what decides); None leaves the variable as it is
_ENV_NOISE = [None, "", "0"]


def _pick_device_cases(hidden: bool) -> dict[str, Any]:
    """Each situation several times, in an order (and with environment noise) drawn from the instructor's
    secret: an answer that replays a call order it has seen cannot know this one."""
    kinds = _SITUATIONS + ([(True, False)] if hidden else [])
    g = seeded(hidden_seed(8, "pick_device", int(hidden)))
    seq = [kinds[i % len(kinds)] for i in range(len(kinds) * (3 if hidden else 2))]
    order = torch.randperm(len(seq), generator=g).tolist()
    noise = torch.randint(len(_ENV_NOISE), (len(seq),), generator=g).tolist()
    return {"situations": [seq[i] for i in order], "env": [_ENV_NOISE[k] for k in noise],
            "real_at": int(torch.randint(len(seq) + 1, (), generator=g))}


@contextlib.contextmanager
def _environment(value: str | None) -> Iterator[None]:
    """CUDA_VISIBLE_DEVICES set to ``value`` for the block (None: left alone), restored after."""
    if value is None:
        yield
        return
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


def _attempt_pick_device(fn: Any) -> Outcome:
    if not callable(fn):
        return attempt(fn, what="pick_device")
    run, hits = _course_helper_watch(fn)
    outcome = attempt(run, what="pick_device")
    if hits:
        return {"error": "pick_device calls autograder.notebook.pick_device, the setup cell's helper: "
                         "write the three tests yourself."}  # fmt: skip
    return outcome


class PickDeviceRuns(TypedDict):
    """The student's pick_device in each pretended situation, and on this machine as it is."""

    situations: list[Outcome]  #: one per ``cases["situations"]``, in their order
    real: Outcome  #: on this machine, nothing pretended
    real_flags: list[bool]  #: this machine's [CUDA available, MPS available]


def _probe_pick_device(fn: Any, cases: dict[str, Any]) -> PickDeviceRuns:
    """The student's pick_device in each pretended situation, in the grader's order and environments, and
    once (at the grader's place in that order) on this machine as it is."""
    outcomes: list[Outcome] = []
    real: Outcome = {}
    envs = cases.get("env") or [None] * len(cases["situations"])
    for k, ((cuda, mps), env) in enumerate(zip(cases["situations"], envs, strict=True)):
        if k == cases.get("real_at"):
            real = _attempt_pick_device(fn)
        with _availability(cuda, mps), _environment(env):
            outcomes.append(_attempt_pick_device(fn))
    if not real:
        real = _attempt_pick_device(fn)
    return {"situations": outcomes, "real": real,
            "real_flags": [torch.cuda.is_available(), _mps_available()]}  # fmt: skip


_DEVICE_HINTS = {
    "cuda": "check torch.cuda.is_available() first: a GPU beats everything else",
    "mps": "after CUDA, try Apple's GPU: torch.backends.mps.is_available()",
    "cpu": "fall back to the CPU when neither GPU is there",
}


def _device_type(value: Any, situation: str) -> str:
    """The device type of a returned value, or a failure naming what came back instead."""
    if type(value) is str:
        fail(f"pick_device() returned the string {value!r} {situation}: return torch.device({value!r}).")
    if marker(value) != "__device__":
        fail(f"pick_device() should return a torch.device, got {type_name(value)} {situation}.")
    return str(value["__device__"]).split(":")[0]


def _judge_pick_device(cases: dict[str, Any], data: PickDeviceRuns) -> str:
    """Every situation's device must be the one dcgan_ref.train.pick_device picks there."""
    pairs = list(zip(cases["situations"], data["situations"], strict=True))
    rank = [*_SITUATIONS, (True, False)]
    # reported in a fixed order of situations (whatever order they were asked in): one message per mistake
    pairs.sort(key=lambda pair: rank.index(tuple(pair[0])))
    for (cuda, mps), outcome in pairs:
        situation = (f"with CUDA {'available' if cuda else 'unavailable'} "
                     f"and MPS {'available' if mps else 'unavailable'}")  # fmt: skip
        got = _device_type(unwrap(outcome), situation)
        with _availability(cuda, mps):
            want = ref_train.pick_device("auto").type
        if got != want:
            fail(f"pick_device() returned {got} {situation}, expected {want}: {_DEVICE_HINTS[want]}.")
    flags = data["real_flags"]
    cuda, mps = (bool(f) for f in flags) if type(flags) is list and len(flags) == 2 else (False, False)
    with _availability(cuda, mps):
        want = ref_train.pick_device("auto").type
    got = _device_type(unwrap(data["real"]), "on this machine")
    expect(got == want, f"on this machine pick_device() returned {got}, expected {want}: {_DEVICE_HINTS[want]}.")
    return f"pick_device prefers cuda > mps > cpu (here: {got})"


check_pick_device = exercise("pick_device", _probe_pick_device, _judge_pick_device, _pick_device_cases)


# --------------------------------------------------------------------------- shared set-up

NZ = 16
BATCH = 8
#: the recording scaler's scale: a power of two, so scaling and unscaling the gradients is exact
#: and a scaled epoch equals an unscaled one to the bit; the growth interval lets update() show
INIT_SCALE = 2.0**11
GROWTH_INTERVAL = 2
# Same float32 operations in the same order on the CPU: parameters agree to rounding. The margin
# covers a different but equivalent order (e.g. BCELoss on sigmoid(D(x)) instead of the logits
# loss); one D pass on torch.cat([real, fake]) changes BatchNorm's statistics, far beyond this.
RTOL, ATOL = 1e-4, 1e-5


def _models(seed: int) -> tuple[nn.Module, nn.Module]:
    """A small 32x32 DCGAN pair, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = Generator(nz=NZ, ngf=8, nc=3, image_size=32)
        G.apply(weights_init)
        D = Discriminator(nc=3, ndf=8, image_size=32)
        D.apply(weights_init)
    return G, D


def _optimizers(G: nn.Module, D: nn.Module) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam(2e-4, betas (0.5, 0.999)) for each, as lesson 07's make_optimizers."""
    return (torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999)),
            torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999)))  # fmt: skip


def _scaler(device: str = "cpu") -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device, init_scale=INIT_SCALE, growth_interval=GROWTH_INTERVAL)


def _batches(seed: int, n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(BATCH, 3, 32, 32, generator=g) * 2 - 1 for _ in range(n)]


def _module_state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in m.state_dict().items()}


def _optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """An optimizer's state_dict as plain data (its int keys as strings)."""
    sd = opt.state_dict()
    copy = {str(k): {n: (x.detach().clone() if isinstance(x, torch.Tensor) else x) for n, x in v.items()}
            for k, v in sd["state"].items()}  # fmt: skip
    return {"state": copy,
            "param_groups": [dict(g) for g in sd["param_groups"]]}  # fmt: skip


def _first_difference(mine: Any, ref: dict[str, torch.Tensor], rtol: float, atol: float) -> str | None:
    """Where a plain state dict from the probe first differs from the reference's, or None."""
    if type(mine) is not dict:
        return f"the whole state ({type_name(mine)})"
    for name, want in ref.items():
        got = mine.get(name)
        if type(got) is not torch.Tensor or got.shape != want.shape:
            return f"{name} (missing or reshaped)"
        if want.dtype.is_floating_point:
            if not torch.allclose(got.double(), want.double(), rtol=rtol, atol=atol):
                return f"{name} (max abs difference {(got.double() - want.double()).abs().max():.3g})"
        elif not torch.equal(got, want):
            return f"{name} ({got.tolist()} vs {want.tolist()})"
    return None


def _step(G: nn.Module, D: nn.Module, opt_G: Any, opt_D: Any, real: torch.Tensor, scaler: Any) -> None:
    """The checkpoint check's training step: dcgan_ref.train.train_step, noise drawn from the global RNG
    (so a resumed run draws the same noise only if the RNG state was restored)."""
    z = torch.randn(real.shape[0], NZ, 1, 1)
    ref_train.train_step(G, D, opt_G, opt_D, real, z, scaler=scaler)


# --------------------------------------------------------------------------- train_epoch


class _TrackedBatch(torch.Tensor):
    """A real batch that records ``.to`` / ``.cpu`` / ``.cuda`` (and gives back a plain tensor)."""

    _log: list
    _index: int

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if func in (torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda) and args and isinstance(args[0], cls):
            if isinstance(out, torch.Tensor):
                args[0]._log.append(("to", args[0]._index, str(out.device.type)))
        if isinstance(out, cls):
            with torch._C.DisableTorchFunctionSubclass():
                out = out.as_subclass(torch.Tensor)
        return out


class _Loader:
    """The epoch's batches; iterating records which batch is current."""

    def __init__(self, batches: list[torch.Tensor], events: list) -> None:
        self.events = events
        self.batches = []
        for i, b in enumerate(batches):
            t = b.clone().as_subclass(_TrackedBatch)
            t._log, t._index = events, i
            self.batches.append(t)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i, b in enumerate(self.batches):
            self.events.append(("batch", i))
            yield b

    def __len__(self) -> int:
        return len(self.batches)


class _RecordingScaler(torch.amp.GradScaler):
    """A real GradScaler that records how it is used, and whether its scaled loss went backward."""

    def __init__(self, device: str, events: list, names: dict[int, str]) -> None:
        super().__init__(device, init_scale=INIT_SCALE, growth_interval=GROWTH_INTERVAL)
        self._events, self._names = events, names

    def scale(self, outputs: Any) -> Any:
        out = super().scale(outputs)
        self._events.append(("scale",))
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda g: self._events.append(("scaled_backward",)))
        return out

    def unscale_(self, optimizer: Any) -> None:
        self._events.append(("unscale", self._names.get(id(optimizer), "?")))
        super().unscale_(optimizer)

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        self._events.append(("scaler_step", self._names.get(id(optimizer), "?")))
        return super().step(optimizer, *args, **kwargs)

    def update(self, new_scale: Any = None) -> None:
        self._events.append(("update",))
        super().update(new_scale)


def _epoch_cases(hidden: bool) -> dict[str, Any]:
    """Runs of (seed, batches, with a scaler): their data sets, and whether to try CUDA."""
    runs = [(0, 3, False, 1), (5, 3, True, 6)]
    if hidden:  # the hidden runs' weights and batches come from the instructor's secret
        runs += [(hidden_seed(8, "train_epoch", 2 * i) % 2**31, n, sc, hidden_seed(8, "train_epoch", 2 * i + 1))
                 for i, (n, sc) in enumerate([(1, False), (2, True)])]
    return {"runs": [{"seed": s, "scaler": sc, "batches": _batches(b, n)} for s, n, sc, b in runs],
            "cuda": hidden}  # fmt: skip


class EpochRun(TypedDict):
    """One call of the student's train_epoch on recording objects: what they saw, and the state afterwards."""

    outcome: Outcome  #: what train_epoch returned (the mean losses), or the error
    events: list[tuple[Any, ...]]  #: in order: ("batch", i), forward passes, steps, the scaler's calls
    G: dict[str, torch.Tensor]  #: G's state_dict after the epoch
    D: dict[str, torch.Tensor]  #: D's state_dict after the epoch
    scaler: dict[str, Any] | None  #: the GradScaler's state_dict after the epoch (None: no scaler)
    device: str  #: the device type the epoch ran on


class EpochRuns(TypedDict):
    """train_epoch on each CPU run, and once on the GPU where the hidden cases ask for it and CUDA is here."""

    runs: list[EpochRun]
    cuda: EpochRun | None


def _instrumented_epoch(fn: Any, run: dict[str, Any], device: torch.device) -> EpochRun:
    """Probe side: one call of the student's train_epoch on recording objects; what they saw."""
    events: list = []
    G, D = (m.to(device) for m in _models(run["seed"]))
    opt_G, opt_D = _optimizers(G, D)
    names = {id(opt_D): "D", id(opt_G): "G"}
    scaler = _RecordingScaler(device.type, events, names) if run["scaler"] else None
    loader = _Loader(run["batches"], events)

    def on_forward(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any) -> None:
            events.append(("forward", name, bool(torch.is_autocast_enabled(device.type)),
                           str(torch.get_autocast_dtype(device.type))))  # fmt: skip
        return hook

    def on_fake(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda g: events.append(("grad_fake",)))

    hooks = [G.register_forward_pre_hook(on_forward("G")), D.register_forward_pre_hook(on_forward("D")),
             G.register_forward_hook(on_fake),
             opt_D.register_step_pre_hook(lambda *a: events.append(("step", "D"))),
             opt_G.register_step_pre_hook(lambda *a: events.append(("step", "G")))]  # fmt: skip
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(run["seed"] + 2)
            outcome = attempt(fn, G, D, opt_G, opt_D, loader, NZ, device, scaler, what="train_epoch",
                              allow_reference=[Generator, Discriminator])  # fmt: skip
    finally:
        for h in hooks:
            h.remove()
    return {"outcome": outcome, "events": events, "G": _module_state(G), "D": _module_state(D),
            "scaler": None if scaler is None else dict(scaler.state_dict()), "device": device.type}  # fmt: skip


def _probe_train_epoch(fn: Any, cases: dict[str, Any]) -> EpochRuns:
    """The student's epoch on each CPU run; on a CUDA machine (hidden run) once more on the GPU."""
    cpu = torch.device("cpu")
    data: EpochRuns = {"runs": [_instrumented_epoch(fn, run, cpu) for run in cases["runs"]], "cuda": None}
    if cases["cuda"] and torch.cuda.is_available():
        data["cuda"] = _instrumented_epoch(fn, {**cases["runs"][1], "seed": 30}, torch.device("cuda"))
    return data


def _reference_epoch(run: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """Judge side: dcgan_ref.train.train_step batch by batch, float32 on the CPU."""
    seed = run["seed"] if seed is None else seed
    G, D = _models(seed)
    opt_G, opt_D = _optimizers(G, D)
    scaler = _scaler() if run["scaler"] else None
    sums = {"loss_D": 0.0, "loss_G": 0.0}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        for real in run["batches"]:
            z = torch.randn(real.shape[0], NZ, 1, 1)
            logs = ref_train.train_step(G, D, opt_G, opt_D, real.clone(), z, scaler=scaler)
            for k in sums:
                sums[k] += float(logs[k])
    n = len(run["batches"])
    return {"G": _module_state(G), "D": _module_state(D), "scaler": None if scaler is None else scaler.state_dict(),
            "losses": {k: v / n for k, v in sums.items()}}  # fmt: skip


def _per_batch(events: list, n: int) -> list[list]:
    """The events of each batch (from the loader yielding it to the next one)."""
    out: list[list] = [[] for _ in range(n)]
    current = None
    for e in events:
        if type(e) not in (list, tuple) or not e:
            continue
        if e[0] == "batch" and type(e[1]) is int and 0 <= e[1] < n:
            current = e[1]
        elif current is not None:
            out[current].append(tuple(e))
    return out


def _judge_scaler_steps(evs: list, at: str, with_scaler: bool) -> None:
    """With a scaler, each optimizer step goes through scaler.step after a scaled backward."""
    if not with_scaler:
        return
    scaled_since = False
    for k, e in enumerate(evs):
        if e == ("scaled_backward",):
            scaled_since = True
        if e[0] == "step":
            before = [x for x in evs[:k] if x[0] != "unscale"]
            if not before or before[-1] != ("scaler_step", e[1]):
                fail(f"{at}: a GradScaler was passed in, but opt_{e[1]}.step() was called directly: use "
                     f"scaler.step(opt_{e[1]}) (it unscales the gradients first and skips a step whose "
                     "gradients overflowed).")
            if not scaled_since:
                fail(f"{at}: a GradScaler was passed in, but the loss of opt_{e[1]}'s step went backward "
                     "unscaled: scaler.scale(loss).backward(), so that small float16 gradients do not "
                     "round to zero.")
            scaled_since = False


def _judge_events(events: list, n: int, device: str, with_scaler: bool, where: str, partial: bool = False) -> None:
    """What the recording objects saw must be the recipe: moves, autocast, detach, steps, scaler.

    ``partial``: the student's code raised part-way; only the checks that explain an error run
    (autocast, how the scaler was used), so the message names the cause rather than the symptom.
    """
    if type(events) is not list:
        fail(f"{where}: the probe recorded nothing.")
    moved = {e[1] for e in events if type(e) in (list, tuple) and len(e) == 3 and e[0] == "to" and e[2] == device}
    missing = [i for i in range(n) if i not in moved]
    if missing and not partial:
        fail(f"{where}, batch {missing[0] + 1} of {n} was never moved to the device (no real.to(device)): "
             "on a GPU, D would get CPU images and fail. Start each batch with real = real.to(device).")
    batches = _per_batch(events, n)
    last_seen = max((e[1] for e in events if type(e) in (list, tuple) and e and e[0] == "batch"
                     and type(e[1]) is int), default=-1)  # fmt: skip
    for i, evs in enumerate(batches):
        at = f"{where}, batch {i + 1}"
        if partial and i > last_seen:
            break
        local_only = partial and i == last_seen
        forwards = [e for e in evs if e[0] == "forward"]
        if device == "cpu" and any(e[2] for e in forwards):
            dtype = next(e[3] for e in forwards if e[2]).replace("torch.", "")
            fail(f"{at}: G or D ran under {dtype} autocast on the CPU. Mixed precision is for the GPU; on a CPU "
                 "it is emulated (slow) and rounds differently: use torch.autocast(device.type, "
                 "dtype=torch.float16, enabled=(device.type == 'cuda')).")  # fmt: skip
        if device == "cuda" and forwards and not all(e[2] for e in forwards):
            fail(f"{at}: on CUDA, G or D ran without autocast: wrap G(z) and both D passes in "
                 "torch.autocast('cuda', dtype=torch.float16, enabled=True).")
        if local_only:
            _judge_scaler_steps(evs, at, with_scaler)
            continue
        steps = [e[1] for e in evs if e[0] == "step"]
        if steps.count("D") != 1 or steps.count("G") != 1:
            fail(f"{at}: opt_D.step() ran {steps.count('D')} time(s) and opt_G.step() {steps.count('G')} "
                 "time(s): exactly one D update, then one G update per batch.")
        if steps != ["D", "G"]:
            fail(f"{at}: G was updated before D: first the D step (on real and fake.detach()), then the G step.")
        d_at = evs.index(("step", "D"))
        if ("grad_fake",) in evs[:d_at]:
            fail(f"{at}: D's loss backpropagated into G's fakes before opt_D.step() (D(fake) instead of "
                 "D(fake.detach()) in the D step; retain_graph=True only hides the error). Use "
                 "fake.detach() in the D step: D's loss must not reach G.")
        if ("grad_fake",) not in evs[d_at:]:
            fail(f"{at}: no gradient reached G's fakes in the G step: compute loss_G on D(fake), not on "
                 "D(fake.detach()) or a new G(z) under torch.no_grad().")
        if not with_scaler:
            continue
        _judge_scaler_steps(evs, at, with_scaler)
        updates = [k for k, e in enumerate(evs) if e == ("update",)]
        if len(updates) != 1:
            fail(f"{at}: scaler.update() ran {len(updates)} time(s): call it exactly once per batch, after "
                 "both optimizer steps (it adapts the scale for the next iteration).")
        if updates[0] < evs.index(("step", "G")):
            fail(f"{at}: scaler.update() ran before the G step: call it once per batch after both steps.")


def _judge_losses(value: Any, ref: dict[str, float], where: str, rtol: float) -> None:
    if type(value) is not dict or not {"loss_D", "loss_G"} <= set(value):
        fail(f"train_epoch should return a dict with 'loss_D' and 'loss_G', got {type_name(value)}"
             + (f" with keys {sorted(value)}" if type(value) is dict else "") + ".")
    for k in ("loss_D", "loss_G"):
        got = value[k]
        if type(got) is torch.Tensor:
            fail(f"train_epoch returned {k} as a tensor: return a float, the mean of loss.item() over the "
                 "batches (summing the loss tensors keeps every batch's graph alive).")
        if type(got) is not float:
            fail(f"train_epoch returned {k} as {type_name(got)}, expected a float (the mean of loss.item()).")
        if not abs(got - ref[k]) <= rtol * max(1.0, abs(ref[k])):
            n_hint = ("add loss.item() for each batch and divide by the number of batches"
                      if got != 0 else "is the loss of each batch added up?")
            fail(f"{where}, train_epoch returned {k} = {got:.6g}, expected the mean over the epoch's "
                 f"batches {ref[k]:.6g}: {n_hint}.")


def _judge_train_epoch(cases: dict[str, Any], data: EpochRuns) -> str:
    """Recipe from the recording objects, then parameters, scaler and losses against train_step."""
    for run, got in zip(cases["runs"], data["runs"], strict=True):
        n = len(run["batches"])
        where = f"one epoch of {n} batch{'es' if n > 1 else ''} on the CPU" + (
            " with a GradScaler passed in" if run["scaler"] else " with scaler=None")
        try:
            value = unwrap(got["outcome"])
        except Exception as err:
            if not run["scaler"] and "NoneType" in str(err):
                fail(f"{err} ({where}: without a GPU there is no scaler; with scaler=None use plain "
                     "loss.backward() and opt.step()).")
            _judge_events(got["events"], n, "cpu", run["scaler"], f"in {where}", partial=True)
            if "unpack" in str(err):
                fail(f"{err} (the loader yields batches of images, tensors (B, C, H, W), not (images, labels) "
                     "pairs: for real in loader).")
            raise
        _judge_events(got["events"], n, "cpu", run["scaler"], f"in {where}")
        ref = _reference_epoch(run)
        untouched = _models(run["seed"])
        for net, k in (("G", 0), ("D", 1)):
            params = {n: v for n, v in _module_state(untouched[k]).items() if n.endswith(("weight", "bias"))}
            if _first_difference(got[net], params, 0, 0) is None:
                fail(f"after {where}, {net}'s parameters never changed: is opt_{net}.step() called every batch?")
        for net in ("D", "G"):
            diff = _first_difference(got[net], ref[net], RTOL, ATOL)
            if diff is not None:
                fail(
                    f"after {where}, {net}'s parameters differ from dcgan_ref.train.train_step applied batch by "
                    f"batch, first at {diff}. Per batch: real to the device, z = torch.randn(batch, nz, 1, 1, "
                    "device=device) (one draw per batch, after moving real), fake = G(z); D step on D(real) "
                    "(target 1) and D(fake.detach()) (target 0) as two passes, with BCE-with-logits; then the "
                    "G step on D(fake) with target 1."
                )
        if run["scaler"]:
            mine, want = got["scaler"], ref["scaler"]
            if type(mine) is not dict or any(mine.get(k) != want[k] for k in ("scale", "_growth_tracker")):
                fail(f"after {where}, the GradScaler's state is {mine!r}, expected {want!r}: one "
                     "scaler.update() per batch, after both steps.")
        _judge_losses(value, ref["losses"], f"after {where}", 1e-4)

    note = ""
    cuda = data.get("cuda")
    if cases["cuda"] and cuda is None:
        note = " (no CUDA GPU here: the mixed-precision path was not run)"
    elif cases["cuda"] and type(cuda) is dict:
        run = {**cases["runs"][1], "seed": 30}
        where = "on CUDA with a GradScaler"
        value = unwrap(cuda["outcome"])
        _judge_events(cuda["events"], len(run["batches"]), "cuda", True, where)
        for net in ("G", "D"):
            state = cuda[net]
            if type(state) is not dict or not all(type(v) is torch.Tensor and bool(torch.isfinite(v.double()).all())
                                                  for v in state.values()):  # fmt: skip
                fail(f"{where}: some of {net}'s parameters are NaN/inf after the epoch: is the scaler used for "
                     "every backward (scaler.scale(loss).backward(), scaler.step(opt), scaler.update())?")
        # float16 activations: ~1e-3 relative per operation; three batches of a tiny net stay within 5 %
        _judge_losses(value, _reference_epoch(run)["losses"], where, 0.05)
        note = " and under CUDA autocast"
    return "train_epoch matches dcgan_ref.train.train_step batch by batch on the CPU, with and without a scaler" + note


check_train_epoch = exercise("train_epoch", _probe_train_epoch, _judge_train_epoch, _epoch_cases)


# --------------------------------------------------------------------------- checkpoints


def _ckpt_cases(hidden: bool) -> dict[str, Any]:
    """Runs (seed, epoch, with a scaler): two training steps, then save / wreck / load / one more step; and
    the seed of another run whose state is put into the saved file in place of the saved run's."""
    runs = [(40, 3, True, 43, 42), (45, 1, False, 48, 47)]
    if hidden:
        runs.append((hidden_seed(8, "checkpoint", 0) % 2**31, 7, True, hidden_seed(8, "checkpoint", 1) % 2**31,
                     hidden_seed(8, "checkpoint", 2)))
    return {"runs": [{"seed": s, "epoch": e, "scaler": sc, "other_seed": o, "batches": _batches(b, 3)}
                     for s, e, sc, o, b in runs]}


def _trained(run: dict[str, Any], seed: int | None = None) -> tuple[Any, ...]:
    """G, D, optimizers and scaler after two steps; the global RNG seeded and moved by them."""
    seed = run["seed"] if seed is None else seed
    torch.manual_seed(seed + 1)
    G, D = _models(seed)
    opt_G, opt_D = _optimizers(G, D)
    scaler = _scaler() if run["scaler"] else None
    for real in run["batches"][:2]:
        _step(G, D, opt_G, opt_D, real.clone(), scaler)
    return G, D, opt_G, opt_D, scaler


class Snapshot(TypedDict):
    """The whole training state of a run (``_snapshot``)."""

    G: dict[str, torch.Tensor]  #: G's state_dict
    D: dict[str, torch.Tensor]  #: D's state_dict
    opt_G: dict[str, Any]  #: opt_G's state_dict as plain data (``_optimizer_state``)
    opt_D: dict[str, Any]  #: opt_D's state_dict as plain data
    scaler: dict[str, Any] | None  #: the GradScaler's state_dict (None: no scaler)
    rng: torch.Tensor  #: the CPU generator's state


def _snapshot(G: nn.Module, D: nn.Module, opt_G: Any, opt_D: Any, scaler: Any) -> Snapshot:
    return {"G": _module_state(G), "D": _module_state(D), "opt_G": _optimizer_state(opt_G),
            "opt_D": _optimizer_state(opt_D), "scaler": None if scaler is None else dict(scaler.state_dict()),
            "rng": torch.get_rng_state()}  # fmt: skip


def _entries(snap: dict[str, Any]) -> list[tuple[str, torch.Tensor]]:
    """Every tensor of a snapshot, with a readable path: ``G/main.0.weight``, ``opt_D/3/exp_avg``, ``rng``."""
    out: list[tuple[str, torch.Tensor]] = []
    for part in ("G", "D"):
        out += [(f"{part}/{k}", v) for k, v in snap[part].items()]
    for part in ("opt_G", "opt_D"):
        for i, entry in snap[part]["state"].items():
            out += [(f"{part}/{i}/{k}", v) for k, v in entry.items() if isinstance(v, torch.Tensor)]
    out.append(("rng", snap["rng"]))
    return out


def _key(t: torch.Tensor) -> tuple[str, tuple[int, ...], bytes]:
    c = t.detach().to("cpu").reshape(-1).contiguous()
    return str(t.dtype), tuple(t.shape), c.view(torch.uint8).numpy().tobytes() if c.numel() else b""


def _swap_state(obj: Any, table: dict[Any, torch.Tensor], found: set, depth: int = 0) -> Any:
    """``obj`` (a loaded checkpoint) with every tensor that is in ``table`` replaced by its counterpart."""
    if depth > 20:
        return obj
    if isinstance(obj, torch.Tensor):
        k = _key(obj)
        if k in table:
            found.add(k)
            new = table[k].clone()
            return nn.Parameter(new, requires_grad=obj.requires_grad) if isinstance(obj, nn.Parameter) else new
        return obj
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _swap_state(v, table, found, depth + 1)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_swap_state(v, table, found, depth + 1) for v in obj)
    return obj


class OtherRun(TypedDict):
    """A checkpoint file holding another run's state, loaded by the student's load_checkpoint."""

    load: Outcome  #: what load_checkpoint returned, or the error
    saved: Snapshot  #: the other run's state
    expected: dict[str, torch.Tensor]  #: per ``_entries`` path: what the restored tensor should be
    in_file: dict[str, bool]  #: per path: whether the file held that tensor (so it could be swapped)
    restored: dict[str, torch.Tensor | None]  #: per path: what was restored


def _load_other_run(load_fn: Any, path: Path, run: dict[str, Any], saved: Snapshot,
                    allow: list[Any]) -> OtherRun:
    """A checkpoint this process never saved: the saved file with every state tensor replaced by the
    matching one of another run (never passed to save_checkpoint), loaded into fresh objects.

    A loader that reads the file restores the other run; one that keeps the state in memory (a dict,
    a global) restores the saved run. The check cannot start a new process, but a file whose contents
    no save ever produced is the same test: only what is in the file can be restored."""
    with torch.random.fork_rng(devices=[]):
        other = _snapshot(*_trained(run, run["other_seed"]))
    mine, theirs = _entries(saved), dict(_entries(other))
    table: dict[Any, torch.Tensor] = {}
    ambiguous: set = set()
    for name, t in mine:
        k = _key(t)
        if k in table and not torch.equal(table[k], theirs[name]):
            ambiguous.add(k)
        table[k] = theirs[name]
    for k in ambiguous:
        table.pop(k)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - the student's own file in the student's own process
        state = torch.load(path, map_location="cpu", weights_only=False)
    found: set = set()
    swapped = _swap_state(state, table, found)
    expected = {name: (theirs[name] if _key(t) in table else t) for name, t in mine}
    in_file = {name: _key(t) in found or _key(t) in ambiguous for name, t in mine}
    other_path = path.parent / "other" / path.name
    other_path.parent.mkdir()
    torch.save(swapped, other_path)
    del state, swapped
    rG, rD = _models(run["seed"] + 200)
    ropt_G, ropt_D = _optimizers(rG, rD)
    rscaler = torch.amp.GradScaler("cpu") if run["scaler"] else None
    outcome = attempt(load_fn, other_path, rG, rD, ropt_G, ropt_D, rscaler, what="load_checkpoint",
                      allow_reference=allow)
    restored = dict(_entries(_snapshot(rG, rD, ropt_G, ropt_D, rscaler)))
    return {"load": outcome, "saved": other, "expected": expected, "in_file": in_file,
            "restored": {name: restored.get(name) for name, _ in mine}}


class CheckpointRun(TypedDict, total=False):
    """One checkpoint run: saved, wrecked, loaded into fresh objects, one more step; then another run's file."""

    saved: Snapshot  #: the state at the save
    save: Outcome  #: what save_checkpoint returned, or the error
    written: bool  #: a non-empty file is at the path
    continued: dict[str, dict[str, torch.Tensor]]  #: G's and D's state_dicts after the run that never stopped
    load: Outcome  #: the rest only once the file was written and the save succeeded: load_checkpoint's outcome
    restored: Snapshot  #: the fresh objects' state after the load
    cuda_rng: list[torch.Tensor]  #: the CUDA generator's state at the save and after the load (CUDA only)
    after_step: dict[str, dict[str, torch.Tensor]] | str  #: G's and D's state after one more step, or its error
    other: OtherRun | str  #: another run's file loaded, or why torch.load could not read the file back


def _probe_checkpoint(save_fn: Any, load_fn: Any, cases: dict[str, Any]) -> list[CheckpointRun]:
    """Save a trained run, wreck everything, load it into fresh objects, take one more step; then load a
    file holding another run's state. Everything compared is computed here, in one process: what was
    saved, what was restored, the uninterrupted run's next step."""
    results: list[CheckpointRun] = []
    allow = [Generator, Discriminator]
    for run in cases["runs"]:
        res: CheckpointRun = {}
        with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
            G, D, opt_G, opt_D, scaler = _trained(run)
            res["saved"] = _snapshot(G, D, opt_G, opt_D, scaler)
            cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
            path = Path(tmp) / "ckpt.pt"
            res["save"] = attempt(save_fn, path, G, D, opt_G, opt_D, scaler, run["epoch"], what="save_checkpoint",
                                  allow_reference=allow)  # fmt: skip
            res["written"] = path.is_file() and os.path.getsize(path) > 0
            # the run that never stopped, rebuilt (the student's save may have touched the objects)
            with torch.random.fork_rng(devices=[]):
                objects = _trained(run)
                _step(*objects[:4], run["batches"][2].clone(), objects[4])
                res["continued"] = {"G": _module_state(objects[0]), "D": _module_state(objects[1])}
            torch.set_rng_state(res["saved"]["rng"])
            # a new process: fresh networks, optimizers and scaler, the RNG somewhere else
            torch.randn(1000)
            if cuda_rng is not None:
                torch.randn(1000, device="cuda")
            rG, rD = _models(run["seed"] + 100)
            ropt_G, ropt_D = _optimizers(rG, rD)
            rscaler = torch.amp.GradScaler("cpu") if run["scaler"] else None
            if res["written"] and "error" not in res["save"]:
                res["load"] = attempt(load_fn, path, rG, rD, ropt_G, ropt_D, rscaler, what="load_checkpoint",
                                      allow_reference=allow)  # fmt: skip
                res["restored"] = _snapshot(rG, rD, ropt_G, ropt_D, rscaler)
                if cuda_rng is not None:
                    res["cuda_rng"] = [cuda_rng, torch.cuda.get_rng_state()]
                if "error" not in res["load"]:
                    try:
                        _step(rG, rD, ropt_G, ropt_D, run["batches"][2].clone(), rscaler)
                        res["after_step"] = {"G": _module_state(rG), "D": _module_state(rD)}
                    except Exception as err:  # noqa: BLE001 - restored objects that cannot train
                        res["after_step"] = f"{type(err).__name__}: {err}"
                    try:
                        res["other"] = _load_other_run(load_fn, path, run, res["saved"], allow)
                    except Exception as err:  # noqa: BLE001 - a file torch.load cannot read back
                        res["other"] = f"{type(err).__name__}: {err}"
        results.append(res)
    return results


_PART_HINTS = {
    "G": "save G.state_dict() (parameters *and* BatchNorm buffers) and restore it with G.load_state_dict(...)",
    "D": "save D.state_dict() (parameters *and* BatchNorm buffers) and restore it with D.load_state_dict(...)",
}
#: restored vs saved, both computed in the student's process: torch.save/torch.load are exact
SAME_SIDE = (1e-6, 1e-8)


def _judge_module(name: str, got: Any, want: dict[str, torch.Tensor]) -> None:
    diff = _first_difference(got, want, *SAME_SIDE)
    if diff is None:
        return
    params_only = all(_first_difference({k: got.get(k)} if type(got) is dict else got, {k: v}, *SAME_SIDE) is None
                      for k, v in want.items() if "running" not in k and "num_batches" not in k)  # fmt: skip
    if params_only:
        fail(f"after load_checkpoint, {name}'s BatchNorm buffers (running_mean, running_var, "
             f"num_batches_tracked) are not the saved ones, first at {diff}: save {name}.state_dict(), not "
             "only its parameters; the buffers are what eval-mode sampling uses.")
    fail(f"after load_checkpoint, {name}'s state differs from the saved one at {diff}: {_PART_HINTS[name]}.")


def _judge_optimizer(name: str, got: Any, want: dict[str, Any]) -> None:
    if type(got) is not dict or type(got.get("state")) is not dict or not got["state"]:
        fail(f"after load_checkpoint, {name} has no Adam state (step counts, moment estimates): save "
             f"{name}.state_dict() and restore it with {name}.load_state_dict(...) on the optimizer passed in, "
             "or the first steps after resuming use fresh moments and the run changes course.")
    if len(got["state"]) != len(want["state"]):
        fail(f"after load_checkpoint, {name} has state for {len(got['state'])} parameters, the saved one for "
             f"{len(want['state'])}: was the other optimizer's state loaded into {name}?")
    for key, entry in want["state"].items():
        mine = got["state"].get(key)
        if type(mine) is not dict:
            fail(f"after load_checkpoint, {name} has no state for parameter {key}.")
        diff = _first_difference(mine, entry, 1e-6, 1e-12)
        if diff is not None:
            fail(f"after load_checkpoint, {name}'s Adam state differs from the saved one at parameter {key}, "
                 f"{diff}: was opt_G's state loaded into opt_D (or the other way round)?")
    groups = got.get("param_groups")
    for mine, group in zip(groups if type(groups) is list else [], want["param_groups"], strict=False):
        for k in ("lr", "betas"):
            value = mine.get(k) if type(mine) is dict else None
            wanted = group.get(k) if type(group) is dict else None
            wanted = tuple(wanted) if type(wanted) in (list, tuple) else wanted
            if (tuple(value) if type(value) in (list, tuple) else value) != wanted:
                fail(f"after load_checkpoint, {name}'s {k} is {value!r}, the saved one {wanted!r}.")


def _judge_saved(saved: Any, want: dict[str, Any]) -> None:
    """The state the probe saved is the run the judge rebuilds from its seeds, to the arithmetic's
    accuracy: the worker and the judge may sum in another order (threads), so a gradient, and Adam's
    moments built from it, agree to ~1e-7 of their size, not to the bit."""
    if type(saved) is not dict:
        fail("the probe recorded no saved state.")
    for net in ("G", "D"):
        diff = _first_difference(saved.get(net), want[net], RTOL, ATOL)
        if diff is not None:
            fail(f"the run the probe saved is not the run rebuilt from its seeds ({net}, {diff}).")
    for opt in ("opt_G", "opt_D"):
        mine = saved.get(opt)
        mine = mine.get("state") if type(mine) is dict else None
        if type(mine) is not dict or set(mine) != set(want[opt]["state"]):
            fail(f"the run the probe saved is not the run rebuilt from its seeds ({opt}).")
        for key, entry in want[opt]["state"].items():
            for n, t in entry.items():
                got = mine[key].get(n) if type(mine[key]) is dict else None
                scale = float(t.double().abs().max()) if t.numel() else 0.0
                if type(got) is not torch.Tensor or got.shape != t.shape or not torch.allclose(
                        got.double(), t.double(), rtol=1e-3, atol=1e-4 * scale + 1e-12):
                    fail(f"the run the probe saved is not the run rebuilt from its seeds ({opt}, {key}, {n}).")
    rng = saved.get("rng")
    if type(rng) is not torch.Tensor or not torch.equal(rng, want["rng"]):
        fail("the run the probe saved is not the run rebuilt from its seeds (RNG).")


def _judge_other(other: Any, with_scaler: str) -> None:
    """The file with another run's state: load_checkpoint restores what the file holds."""
    if type(other) is str:
        fail(f"the checkpoint file could not be read back with torch.load ({other}): save plain state with "
             "torch.save (state dicts, tensors, numbers).")
    if type(other) is not dict:
        fail("the probe recorded no second load.")
    unwrap(other.get("load"))
    expected, in_file, restored = other.get("expected"), other.get("in_file"), other.get("restored")
    if type(expected) is not dict or type(in_file) is not dict or type(restored) is not dict:
        fail("the probe recorded no second load.")
    missing = [name for name, present in in_file.items() if present is not True]
    if missing:
        fail(f"load_checkpoint restored state the checkpoint file does not hold (first: {missing[0]}): the file "
             "must hold everything a resumed run needs, and load_checkpoint must take it from the file (a checkpoint "
             "is loaded in a new process, where nothing else survives).")
    for name, want in expected.items():
        got = restored.get(name)
        if type(want) is not torch.Tensor or type(got) is not torch.Tensor or got.shape != want.shape or not (
                torch.equal(got, want) or (got.dtype.is_floating_point and torch.allclose(got.double(), want.double(),
                                                                                          *SAME_SIDE))):
            fail(f"given a checkpoint file that holds another run's state, load_checkpoint {with_scaler} did not "
                 f"restore it (first at {name}): it restored what an earlier save kept in memory. Read everything "
                 "from the file at the path it is given: a checkpoint is loaded in a new process, where nothing "
                 "else survives (no dict, no global).")


def _judge_checkpoint(cases: dict[str, Any], data: list[CheckpointRun]) -> str:
    """Every restored part equals what was saved; the run saved is the one rebuilt here from its seeds; one
    more step agrees with the run that never stopped; a file holding another run's state restores that."""
    if type(data) is not list or len(data) != len(cases["runs"]):
        fail("the probe returned no result for the checkpoint runs.")
    for run, res in zip(cases["runs"], data, strict=True):
        if type(res) is not dict:
            fail("the probe returned no result for a checkpoint run.")
        with torch.random.fork_rng(devices=[]):
            rebuilt = _snapshot(*_trained(run))
        with_scaler = "with a GradScaler" if run["scaler"] else "with scaler=None"
        try:
            unwrap(res.get("save"))
        except Exception as err:
            if not run["scaler"] and "NoneType" in str(err):
                fail(f"{err} (save_checkpoint {with_scaler}: on a CPU there is no scaler; save None for it).")
            raise
        expect(res.get("written") is True,
               "save_checkpoint wrote nothing at the path it was given: torch.save(state, path).")
        try:
            epoch = unwrap(res.get("load"))
        except Exception as err:
            if not run["scaler"] and "NoneType" in str(err):
                fail(f"{err} (load_checkpoint {with_scaler}: only restore the scaler when there is one).")
            raise
        if type(epoch) is not int or epoch != run["epoch"]:
            fail(f"load_checkpoint returned {epoch!r} ({type_name(epoch)}), expected the saved epoch "
                 f"{run['epoch']} (an int): return state['epoch'].")
        want = res.get("saved")
        _judge_saved(want, rebuilt)
        got = res.get("restored")
        expect(type(got) is dict, "the probe recorded no restored state.")
        _judge_module("G", got.get("G"), want["G"])
        _judge_module("D", got.get("D"), want["D"])
        _judge_optimizer("opt_G", got.get("opt_G"), want["opt_G"])
        _judge_optimizer("opt_D", got.get("opt_D"), want["opt_D"])
        if run["scaler"]:
            mine = got.get("scaler")
            if type(mine) is not dict or any(mine.get(k) != v for k, v in rebuilt["scaler"].items()):
                fail(f"after load_checkpoint {with_scaler}, the scaler's state is {mine!r}, the saved one "
                     f"{rebuilt['scaler']!r}: save scaler.state_dict() and restore it with "
                     "scaler.load_state_dict(...). A fresh scaler starts at 65536 again and skips the first steps "
                     "of the resumed run.")
        rng = got.get("rng")
        if type(rng) is not torch.Tensor or not torch.equal(rng, rebuilt["rng"]):
            fail("after load_checkpoint the random number generator is not where it was at the save, so the "
                 "resumed run draws different noise: save torch.get_rng_state() and restore it with "
                 "torch.set_rng_state(...).")
        cuda_rng = res.get("cuda_rng")
        if type(cuda_rng) is list and len(cuda_rng) == 2 and not torch.equal(cuda_rng[0], cuda_rng[1]):
            fail("after load_checkpoint the CUDA random number generator is not where it was at the save: save "
                 "torch.cuda.get_rng_state_all() and restore it with torch.cuda.set_rng_state_all(...).")
        step = res.get("after_step")
        if type(step) is str:
            fail(f"one step after resuming {with_scaler}, training failed: {step}")
        continued = res.get("continued")
        expect(type(continued) is dict, "the probe recorded no uninterrupted run.")
        for net in ("G", "D"):
            diff = _first_difference(step.get(net) if type(step) is dict else step, continued[net], *SAME_SIDE)
            if diff is not None:
                fail(f"one step after resuming {with_scaler}, {net} differs from the run that never stopped at "
                     f"{diff}: something in the training state is not saved or not restored.")
        _judge_other(res.get("other"), with_scaler)
    return "a resumed run continues exactly like the uninterrupted one (networks, Adam, scaler, RNG)"


check_checkpoint = exercise("checkpoint", _probe_checkpoint, _judge_checkpoint, _ckpt_cases)
