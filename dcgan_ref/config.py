"""TrainConfig: every setting of a training run, written once.

Each field carries its default, its rule (the bound a value must respect, in words) and its help
text. ``TrainConfig.__post_init__`` checks values against the rules; ``cli.py`` builds the
``train`` command's flags from the same fields (help, choices, and a parser that applies the same
rule), so a setting's default, bounds and documentation live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .data import DATASETS, native_nc
from .keras_gan import KERAS_IMAGE_SIZE

ARCHS = ("dcgan", "keras-cifar")
AMP_MODES = ("auto", "off", "bf16", "fp16")
# torch.compile's modes. The CUDA-graph ones ("reduce-overhead", "max-autotune") replay each
# compiled forward and backward as one graph launch: at batch 128 a DCGAN step is ~400 small
# kernels, so on a fast GPU the launches, not the arithmetic, can set the pace. On a CPU they act
# as "default" / "max-autotune-no-cudagraphs".
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
# "device": the speed knobs left on auto are chosen for the device the run is on; "cuda": chosen
# as for a CUDA GPU with bf16 tensor cores, whatever the device (the CPU tests of the GPU path).
SPEED_PROFILES = ("device", "cuda")
FID_BACKENDS = ("auto", "pytorch-fid", "fid-helper")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Rule:
    """A bound on a number setting, and the words that state it ("must be > 0")."""

    name: str
    holds: Callable[[Any], bool]
    words: str
    integer: bool = False


POSITIVE_INT = Rule("positive_int", lambda v: v > 0, "must be a positive integer", integer=True)
NON_NEGATIVE_INT = Rule("non_negative_int", lambda v: v >= 0, "must be an integer >= 0", integer=True)
POSITIVE = Rule("positive_float", lambda v: v > 0, "must be > 0")
NON_NEGATIVE = Rule("non_negative", lambda v: v >= 0, "must be >= 0")
FRACTION = Rule("fraction", lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")
OPEN_FRACTION = Rule("open_fraction", lambda v: 0.0 < v < 1.0, "must be in (0, 1), e.g. 0.999")


def setting(
    default: Any,
    help: str,  # noqa: A002 - argparse's word
    *,
    rule: Rule | None = None,
    choices: tuple[Any, ...] | None = None,
    flag: str | None = None,
    cli: dict[str, Any] | bool = True,
) -> Any:
    """A TrainConfig field with what the CLI and the checks need: ``rule`` or ``choices`` bound
    its value (checked both here and by the parser); ``flag`` overrides ``--the-field-name``;
    ``cli``: extra ``add_argument`` keywords, or False for a setting with no flag."""
    meta = {"help": help, "rule": rule, "choices": choices, "flag": flag, "cli": cli}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` / "auto" = pick for the device (or the data set).

    Invalid values and combinations are refused here with a ``ValueError`` naming the setting.
    """

    dataset: str = setting(
        "cifar10", "cifar10 or mnist (torchvision, downloaded into --data-root), digits (scikit-learn's 1,797 8x8 "
        "digits, offline), folder (any ImageFolder at --data-root), or synthetic (procedural shapes, offline)",
        choices=tuple(DATASETS))  # fmt: skip
    data_root: str = setting("data", "where the data set is, or is downloaded to")
    image_size: int = setting(64, "side of the images in pixels", choices=(32, 64))
    epochs: int = setting(25, "passes over the data set", rule=POSITIVE_INT)
    batch_size: int = setting(128, "images per step (under torchrun: in all processes together)", rule=POSITIVE_INT)
    arch: str = setting(
        "dcgan", "dcgan: the all-convolutional DCGAN (32 or 64); keras-cifar: the Keras CIFAR-10 GAN (Dense "
        "projection in G, dropout in D; 32x32 only)", choices=ARCHS)  # fmt: skip
    nz: int = setting(100, "length of the noise vector z", rule=POSITIVE_INT)
    ngf: int | None = setting(
        None, "width of G (dcgan: channels of its last block, default 64; keras-cifar: channels of its "
        "transposed convolutions, default 128)", rule=POSITIVE_INT)  # fmt: skip
    ndf: int = setting(64, "width of D (channels of its first layer)", rule=POSITIVE_INT)
    nc: int | None = setting(
        None, "image channels: 1 converts colour data to grey, 3 repeats grey data (default: the data set's own, "
        "1 for mnist and digits)", choices=(1, 3))  # fmt: skip
    dropout: float | None = setting(None, "keras-cifar: dropout before D's last layer (default 0.4)", rule=FRACTION)
    lr: float = setting(2e-4, "Adam learning rate of both networks", rule=POSITIVE)
    lr_g: float | None = setting(None, "G's learning rate (default: --lr)", rule=POSITIVE)
    lr_d: float | None = setting(None, "D's learning rate (default: --lr)", rule=POSITIVE)
    beta1: float = setting(0.5, "Adam beta1 (0.5 as in the DCGAN paper)", rule=FRACTION)
    beta2: float = setting(0.999, "Adam beta2", rule=FRACTION)
    label_smoothing: float = setting(0.0, "one-sided: real targets become 1 - this (e.g. 0.1)", rule=FRACTION)
    instance_noise: float = setting(
        0.0, "std of Gaussian noise added to D's inputs, annealed linearly to 0", rule=NON_NEGATIVE)  # fmt: skip
    noise_anneal_steps: int | None = setting(
        None, "steps over which the instance noise decays (default: the whole run)", rule=POSITIVE_INT)  # fmt: skip
    ema_decay: float | None = setting(
        None, "keep an exponential moving average of G's weights with this decay (e.g. 0.999); samples, "
        "generator.pt and FID then come from it", rule=OPEN_FRACTION)  # fmt: skip
    seed: int = setting(0, "same seed, same device: same result")
    device: str = setting("auto", "auto picks cuda, then mps, then cpu", cli={"choices": DEVICES})
    out: str = setting("runs/dcgan", "output folder")
    resume: bool = setting(
        False, "continue from OUT/checkpoints/last.pt if present (the run's defining settings must match; epochs, "
        "learning rates, betas, logging may change)")  # fmt: skip
    max_steps: int | None = setting(None, "stop after this many steps in total (smoke runs)", rule=POSITIVE_INT)
    synthetic_size: int = setting(10000, "images in the synthetic set (--dataset synthetic)", rule=POSITIVE_INT)
    num_workers: int = setting(
        2, "DataLoader workers (when data is not held as one tensor: folder data sets)", rule=NON_NEGATIVE_INT,
        flag="--workers", cli={"metavar": "WORKERS"})  # fmt: skip
    log_every: int = setting(
        50, "steps between loss read-backs (every step is still recorded)", rule=POSITIVE_INT)  # fmt: skip
    checkpoint_every: int = setting(
        0, "also checkpoint every N steps (0: at the end of each epoch only)", rule=NON_NEGATIVE_INT)  # fmt: skip
    n_samples: int = setting(64, "images in each sample grid", rule=POSITIVE_INT, cli=False)
    fid_every: int = setting(
        0, "FID every N epochs against the training set, a column of metrics.csv (0: never)",
        rule=NON_NEGATIVE_INT)  # fmt: skip
    fid_n: int = setting(
        10000, "with --fid-every: generated images per FID (real: as many, at most the data set)",
        rule=POSITIVE_INT)  # fmt: skip
    fid_backend: str = setting(
        "auto", "with --fid-every: where the Inception weights come from (see fid.py)", choices=FID_BACKENDS)
    tensorboard: bool = setting(False, "also log losses, D outputs, sample grids and FID to OUT/tensorboard")
    progress: bool = setting(True, "no progress bar", flag="--no-progress")
    # speed knobs (speed.py resolves None / "auto" for the device)
    amp: str = setting(
        "auto", "mixed precision; auto: bf16 on Ampere+ GPUs and on CPUs with AMX bf16 units, fp16 on V100/T4, "
        "off elsewhere", choices=AMP_MODES)  # fmt: skip
    data_on_device: bool | None = setting(
        None, "hold the uint8 data set on the device, transform batches there (default: chosen for the device)")
    channels_last: bool | None = setting(None, "channels_last memory format (default: chosen for the device)")
    compile: bool | None = setting(None, "torch.compile G and D (default: chosen for the device)")
    compile_mode: str = setting(
        "default", "torch.compile mode (with --compile); reduce-overhead, max-autotune: CUDA graphs",
        choices=COMPILE_MODES)  # fmt: skip
    fused_adam: bool | None = setting(None, "fused Adam kernels (default: chosen for the device)")
    cudnn_benchmark: bool | None = setting(
        None, "cuDNN picks the fastest convolution algorithms by timing them once (default: chosen for the device)")
    speed_profile: str = setting(
        "device", "what the knobs left on auto are chosen for: the device the run is on, or cuda: as on a CUDA "
        "GPU with bf16 tensor cores, on any device (tests the GPU path's settings on a CPU)",
        choices=SPEED_PROFILES)  # fmt: skip
    extra: dict[str, Any] = setting({}, "free-form notes, recorded in config.json; the trainer never reads them",
                                    cli=False)  # fmt: skip

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            rule, choices = f.metadata.get("rule"), f.metadata.get("choices")
            if choices is not None and value not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(map(str, choices))}, got {value!r}")
            if rule is not None and not rule.holds(value):
                raise ValueError(f"{f.name} {rule.words}, got {value}")
        self._fill_in_and_cross_check()

    def _fill_in_and_cross_check(self) -> None:
        """The defaults that depend on other settings, then the combinations that cannot be honoured."""

        def bad(msg: str) -> None:
            raise ValueError(msg)

        if self.nc is None:
            self.nc = native_nc(self.dataset)
        if self.ngf is None:
            self.ngf = 128 if self.arch == "keras-cifar" else 64
        if self.arch == "keras-cifar":
            if self.image_size != KERAS_IMAGE_SIZE:
                bad(f"--arch keras-cifar is 32x32 only: use --image-size 32 (got {self.image_size})")
            if self.dropout is None:
                self.dropout = 0.4
        elif self.dropout is not None:
            bad("--dropout applies to --arch keras-cifar only (the DCGAN discriminator has no dropout)")
        if self.lr_g is None:
            self.lr_g = self.lr
        if self.lr_d is None:
            self.lr_d = self.lr
        if self.compile_mode != "default" and not self.compile:
            bad(f"--compile-mode {self.compile_mode} has no effect without --compile: add --compile")
        if self.noise_anneal_steps is not None and self.instance_noise <= 0:
            bad("--noise-anneal-steps needs --instance-noise > 0 (there is no noise to anneal)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A config from a saved one (a checkpoint's ``config``), ignoring keys it no longer has."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def default_of(f: Any) -> Any:
    """A field's default value (a fresh one for a factory)."""
    return f.default_factory() if f.default is MISSING else f.default
