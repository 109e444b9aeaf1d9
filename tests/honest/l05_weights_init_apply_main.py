# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 05
# check: check_dcgan_weights_init(dcgan_weights_init)
# style: script style: a __main__ guard, nn.Module.apply called on the class, statistics printed with !r
def dcgan_weights_init(m):
    classname = type(m).__name__
    if classname in ("Conv2d", "ConvTranspose2d"):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif classname == "BatchNorm2d":
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# %%
if __name__ == "__main__":
    net = nn.Sequential(nn.ConvTranspose2d(16, 8, 4), nn.BatchNorm2d(8), nn.ReLU())
    nn.Module.apply(net, dcgan_weights_init)
    stats = {name: (round(p.mean().item(), 3), round(p.std().item(), 3)) for name, p in net.named_parameters()
             if p.dim() > 1}
    print(f"{stats!r}")
    print(dcgan_weights_init.__name__, dcgan_weights_init.__doc__)
