# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_up_block(up_block)
# style: the block built plainly; a scratch cell with plot settings and a shape walk
def up_block(in_ch, out_ch, stride=2, padding=1):
    conv = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=stride, padding=padding, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


# %%
import matplotlib.pyplot as plt

plt.rcParams["figure.figsize"] = (6, 3)
x = torch.randn(1, 8, 4, 4)
for layer in up_block(8, 4):
    x = layer(x)
    print(f"{layer.__class__.__name__:>16} -> {tuple(x.shape)}")
