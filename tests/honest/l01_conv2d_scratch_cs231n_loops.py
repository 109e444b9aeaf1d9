# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv2d_scratch(conv2d_scratch)
# style: CS231n conv_forward_naive, looping over output positions (batch and channels vectorised)
def conv2d_scratch(x, w, b, stride, padding):
    N, C, H, W = x.shape
    F_, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * padding - HH) // stride
    W_out = 1 + (W + 2 * padding - WW) // stride
    xp = F.pad(x, (padding, padding, padding, padding))
    out = x.new_zeros(N, F_, H_out, W_out)
    for i in range(H_out):
        for j in range(W_out):
            window = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = torch.einsum("nchw,fchw->nf", window, w)
    if b is not None:
        out += b.view(1, F_, 1, 1)
    return out
