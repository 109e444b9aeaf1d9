"""The four networks: shapes, parameter counts, layer pattern, init, canonical checkpoints."""

import pytest
import torch
from torch import nn

from dcgan_ref.keras_gan import KerasDiscriminator, KerasGenerator, KerasSigmoidDiscriminator
from dcgan_ref.models import (
    Discriminator,
    Generator,
    SigmoidDiscriminator,
    count_parameters,
    down_block,
    up_block,
    weights_init,
)


# The canonical DCGAN as pytorch/examples' dcgan/main.py writes it (64x64), kept here as the
# independent yardstick: parameter counts and state_dict compatibility are checked against it.
class CanonicalG(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x):
        return self.main(x)


class CanonicalD(nn.Module):
    def __init__(self, nc=3, ndf=64):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size):
    G, D = Generator(image_size=size), Discriminator(image_size=size)
    for n in (1, 5):
        x = G(torch.randn(n, 100))
        assert x.shape == (n, 3, size, size)
        assert x.abs().max() <= 1.0, "G must end in Tanh"
        assert D(x).shape == (n,)
    assert G(torch.randn(2, 100, 1, 1)).shape == (2, 3, size, size), "4-D noise accepted too"
    probs = SigmoidDiscriminator(image_size=size)(torch.randn(3, 3, size, size))
    assert ((probs > 0) & (probs < 1)).all()


def test_64x64_parameter_counts_equal_the_canonical_models():
    assert count_parameters(Generator()) == count_parameters(CanonicalG())
    assert count_parameters(Discriminator()) == count_parameters(CanonicalD())
    assert count_parameters(SigmoidDiscriminator()) == count_parameters(CanonicalD())


def test_32x32_models_drop_one_block_each_side():
    G32, D32 = Generator(image_size=32), Discriminator(image_size=32)
    convs = lambda m, t: [x for x in m.modules() if isinstance(x, t)]  # noqa: E731
    assert len(convs(G32, nn.ConvTranspose2d)) == 4 and len(convs(Generator(), nn.ConvTranspose2d)) == 5
    assert len(convs(D32, nn.Conv2d)) == 4 and len(convs(Discriminator(), nn.Conv2d)) == 5
    # widths: nz -> 4ngf -> 2ngf -> ngf -> nc
    assert [c.out_channels for c in convs(G32, nn.ConvTranspose2d)] == [256, 128, 64, 3]


def test_layer_pattern_follows_dcgan():
    for size in (32, 64):
        G, D = Generator(image_size=size), Discriminator(image_size=size)
        for m in (G, D):
            kinds = {type(x) for x in m.modules()}
            assert not kinds & {nn.Linear, nn.MaxPool2d, nn.AvgPool2d}, "no pooling, no fully connected layer"
        g_layers = list(G.main)
        assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d), "no BN on G's output"
        d_layers = list(D.main)
        assert isinstance(d_layers[1], nn.LeakyReLU), "no BatchNorm on D's input layer"
        assert all(x.negative_slope == 0.2 for x in D.modules() if isinstance(x, nn.LeakyReLU))
        assert not any(isinstance(x, nn.ReLU) for x in D.modules())


def test_blocks_halve_and_double():
    x = torch.randn(2, 8, 16, 16)
    assert down_block(8, 4)(x).shape == (2, 4, 8, 8)
    assert up_block(8, 4)(x).shape == (2, 4, 32, 32)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in down_block(8, 4, batchnorm=False))


def test_canonical_state_dicts_load_as_is_and_give_the_same_outputs():
    torch.manual_seed(0)
    cg, cd = CanonicalG(), CanonicalD()
    cg.apply(weights_init)
    cd.apply(weights_init)
    G, D, PD = Generator(), Discriminator(), SigmoidDiscriminator()
    G.load_state_dict(cg.state_dict())  # strict: every key matches
    D.load_state_dict(cd.state_dict())
    PD.load_state_dict(cd.state_dict())
    for m in (cg, cd, G, D, PD):
        m.eval()
    z = torch.randn(4, 100, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(G(z), cg(z), rtol=0, atol=0)
        x = cg(z)
        torch.testing.assert_close(PD(x), cd(x), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(torch.sigmoid(D(x)), cd(x), rtol=1e-6, atol=1e-7)


def test_weights_init_statistics():
    torch.manual_seed(1)
    G, D = Generator(ngf=64), Discriminator(ndf=64)
    G.apply(weights_init)
    D.apply(weights_init)
    conv_w = torch.cat([m.weight.flatten() for m in [*G.modules(), *D.modules()]
                        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])  # fmt: skip
    bn = [m for m in [*G.modules(), *D.modules()] if isinstance(m, nn.BatchNorm2d)]
    bn_w = torch.cat([m.weight.flatten() for m in bn])
    # millions of conv weights: mean within 1e-4 of 0 and std within 1% of 0.02
    assert abs(conv_w.mean().item()) < 1e-4 and abs(conv_w.std().item() - 0.02) < 2e-4
    # ~2.9k BatchNorm weights: mean within 3 standard errors (0.02/sqrt(2900) ~ 4e-4) of 1
    assert abs(bn_w.mean().item() - 1) < 1.2e-3 and abs(bn_w.std().item() - 0.02) < 2e-3
    assert all((m.bias == 0).all() for m in bn)


def test_unsupported_size_is_a_clear_error():
    with pytest.raises(ValueError, match="image_size must be one of"):
        Generator(image_size=48)


# --- the Keras CIFAR GAN of the course's source notes (dcgan_ref.keras_gan) --------------------

def test_keras_shapes_and_both_noise_layouts():
    G, D = KerasGenerator(), KerasDiscriminator()
    for n in (1, 5):
        x = G(torch.randn(n, 100))
        assert x.shape == (n, 3, 32, 32) and x.abs().max() <= 1.0
        assert D(x).shape == (n,), "logits, one per image, like models.Discriminator"
    torch.manual_seed(0)
    z = torch.randn(3, 100)
    G.eval()
    torch.testing.assert_close(G(z), G(z[:, :, None, None]), rtol=0, atol=0)
    assert KerasGenerator(nz=16, ngf=8, nc=1)(torch.randn(2, 16, 1, 1)).shape == (2, 1, 32, 32)
    D.eval()
    probs = KerasSigmoidDiscriminator()
    probs.load_state_dict(D.state_dict())
    probs.eval()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(probs(x), torch.sigmoid(D(x)))
    assert D.returns_logits and not probs.returns_logits
    with pytest.raises(ValueError, match="32x32 only"):
        KerasGenerator(image_size=64)


def test_keras_parameter_counts():
    # The Keras tutorial's model.summary() totals (Brownlee 2019, CIFAR-10 GAN): D 522,497;
    # G without BatchNorm 1,466,115. With BatchNorm (seed 004): + 2 x (256 + 3 x 128).
    assert count_parameters(KerasDiscriminator()) == 522_497
    assert count_parameters(KerasGenerator(batchnorm=False)) == 1_466_115
    assert count_parameters(KerasGenerator()) == 1_466_115 + 2 * (256 + 3 * 128)
    # the same counts from the layer list, for other widths
    nz, ngf, ndf, nc = 16, 8, 4, 1
    g = (nz + 1) * 16 * 2 * ngf + 2 * 2 * ngf + (2 * ngf * 16 + 1) * ngf + 2 * (ngf * 16 * ngf + ngf) \
        + 3 * 2 * ngf + (ngf * 9 + 1) * nc
    d = (nc * 9 + 1) * ndf + (ndf * 9 + 1) * 2 * ndf + (2 * ndf * 9 + 1) * 2 * ndf + (2 * ndf * 9 + 1) * 4 * ndf \
        + 4 * ndf * 16 + 1
    assert count_parameters(KerasGenerator(nz, ngf, nc)) == g
    assert count_parameters(KerasDiscriminator(nc, ndf)) == d
    # most of G's parameters sit in its fully connected projection... and none in the DCGAN's
    assert count_parameters(KerasGenerator().project) == 413_696
    assert not any(isinstance(m, nn.Linear) for m in Generator(image_size=32).modules())


def test_keras_layer_pattern():
    G, D = KerasGenerator(), KerasDiscriminator()
    convt = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.kernel_size, c.stride) for c in convt] == [((4, 4), (2, 2))] * 3
    assert isinstance(G.main[-1], nn.Tanh) and isinstance(G.main[-2], nn.Conv2d) and G.main[-2].kernel_size == (3, 3)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 4
    assert all(m.negative_slope == 0.2 for m in G.modules() if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.ReLU) for m in [*G.modules(), *D.modules()])
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (3, 3), (1, 1)), (128, (3, 3), (2, 2)), (128, (3, 3), (2, 2)), (256, (3, 3), (2, 2))]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    drop = [m for m in D.modules() if isinstance(m, nn.Dropout)]
    assert len(drop) == 1 and drop[0].p == 0.4
    # dropout is on in training mode: two passes differ; in eval mode they agree
    x = torch.randn(4, 3, 32, 32)
    D.train()
    assert not torch.equal(D(x), D(x))
    D.eval()
    assert torch.equal(D(x), D(x))
