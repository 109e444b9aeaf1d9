# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_checkpoint(save_checkpoint, load_checkpoint)
# style: the state dicts plus the RNG states in one dict, cuda guarded
def save_checkpoint(path, G, D, opt_G, opt_D, scaler, epoch):
    torch.save({
        "epoch": epoch,
        "netG": G.state_dict(),
        "netD": D.state_dict(),
        "optG": opt_G.state_dict(),
        "optD": opt_D.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }, path)


def load_checkpoint(path, G, D, opt_G, opt_D, scaler=None):
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    G.load_state_dict(ckpt["netG"])
    D.load_state_dict(ckpt["netD"])
    opt_G.load_state_dict(ckpt["optG"])
    opt_D.load_state_dict(ckpt["optD"])
    if scaler is not None and ckpt["scaler"] is not None:
        scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    return ckpt["epoch"]
