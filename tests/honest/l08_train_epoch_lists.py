# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_train_epoch(train_epoch)
# style: a nullcontext when not on CUDA, losses kept in lists, statistics.fmean
import contextlib
import statistics


def train_epoch(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
    bce = nn.BCEWithLogitsLoss()

    def autocast():
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def update(loss, opt):
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)

    d_losses, g_losses = [], []
    for real in loader:
        real = real.to(device)
        z = torch.randn(real.shape[0], nz, 1, 1, device=device)
        with autocast():
            fake = G(z)
        opt_D.zero_grad(set_to_none=True)
        with autocast():
            out_r, out_f = D(real), D(fake.detach())
            loss_D = bce(out_r, torch.ones_like(out_r)) + bce(out_f, torch.zeros_like(out_f))
        update(loss_D, opt_D)
        opt_G.zero_grad(set_to_none=True)
        with autocast():
            out = D(fake)
            loss_G = bce(out, torch.ones_like(out))
        update(loss_G, opt_G)
        if scaler is not None:
            scaler.update()
        d_losses.append(loss_D.item())
        g_losses.append(loss_G.item())
    return {"loss_D": statistics.fmean(d_losses), "loss_G": statistics.fmean(g_losses)}


# %%
# scratch: a timer as a context manager and a callable averaging meter
import time


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


class Meter:
    def __init__(self):
        self.values = []

    def __call__(self, v):
        self.values.append(float(v))
        return sum(self.values) / len(self.values)

    def __len__(self):
        return len(self.values)


with Timer() as t:
    meter = Meter()
    for v in (1.0, 2.0, 3.0):
        meter(v)
print(f"{len(meter)} values, mean {meter.values[-1]!r}, {t.seconds:.4f}s")
