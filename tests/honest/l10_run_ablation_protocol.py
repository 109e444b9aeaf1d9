# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_run_ablation(run_ablation)
# style: the protocol step by step, config read into locals, a dict of lists for the accuracies
from torchvision.utils import make_grid


def run_ablation(config, data, kit, steps, seed):
    torch.manual_seed(seed)
    G, D = kit["build"](config)
    lr, batch, nz = config["lr"], config["batch_size"], config["nz"]
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    device = data.device
    rng = torch.Generator(device).manual_seed(seed)
    history = {"acc_real": [], "acc_fake": []}
    for step in range(steps):
        idx = torch.randint(len(data), (batch,), generator=rng, device=device)
        z = torch.randn(batch, nz, 1, 1, generator=rng, device=device)
        sigma = kit["noise_sigma"](config["instance_noise"], step, steps)
        logs = kit["train_step"](G, D, opt_G, opt_D, data[idx], z, noise_sigma=sigma, noise_generator=rng)
        for key in history:
            history[key].append(float(logs[key]))
    n_eval = config["n_eval"]
    eval_rng = torch.Generator(device).manual_seed(config["eval_seed"])
    z_eval = torch.randn(n_eval, nz, 1, 1, generator=eval_rng, device=device)
    fake = kit["sample"](G, z_eval)
    grid = make_grid(kit["to_image"](fake[:64]), nrow=8, padding=2).cpu()
    return {"frechet": float(kit["distance"](data[:n_eval], fake)), "grid": grid, **history}
