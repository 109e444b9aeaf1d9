# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_checkpoint(save_checkpoint, load_checkpoint)
# style: pathlib and os for the folder, names zipped with the objects, a dataclass-free loop
import os
from pathlib import Path

PARTS = ("G", "D", "opt_G", "opt_D")


def save_checkpoint(path, G, D, opt_G, opt_D, scaler, epoch):
    path = Path(path)
    if path.parent != Path("."):
        os.makedirs(path.parent, exist_ok=True)
    state = {name: obj.state_dict() for name, obj in zip(PARTS, (G, D, opt_G, opt_D))}
    state.update(epoch=epoch, rng=torch.get_rng_state())
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, os.fspath(path))


def load_checkpoint(path, G, D, opt_G, opt_D, scaler=None):
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    for name, obj in zip(PARTS, (G, D, opt_G, opt_D)):
        obj.load_state_dict(state[name])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"])
