# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 05
# check: check_dcgan_weights_init(dcgan_weights_init)
# style: type(m).__name__ against a set of names, under torch.no_grad()
CONV_NAMES = {"Conv2d", "ConvTranspose2d"}


def dcgan_weights_init(m: nn.Module) -> None:
    name = type(m).__name__
    with torch.no_grad():
        if name in CONV_NAMES:
            m.weight.normal_(mean=0.0, std=0.02)
            if m.bias is not None:
                m.bias.zero_()
        elif name == "BatchNorm2d":
            m.weight.normal_(mean=1.0, std=0.02)
            m.bias.zero_()


# %%
# a scratch cell: see what apply visits
net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
net.apply(dcgan_weights_init)
for child in net.children():
    print(f"{type(child).__name__:>12}: {child!r}")
