# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv2d_backward(conv2d_backward)
# style: CS231n conv_backward_naive, looping over output positions
def conv2d_backward(x, w, grad_out, stride, padding):
    N, C, H, W = x.shape
    F_, _, HH, WW = w.shape
    _, _, H_out, W_out = grad_out.shape
    xp = F.pad(x, (padding,) * 4)
    dxp = torch.zeros_like(xp)
    dw = torch.zeros_like(w)
    for i in range(H_out):
        for j in range(W_out):
            hs, ws = i * stride, j * stride
            window = xp[:, :, hs:hs + HH, ws:ws + WW]
            g = grad_out[:, :, i, j]  # (N, F)
            dw += torch.einsum("nf,nchw->fchw", g, window)
            dxp[:, :, hs:hs + HH, ws:ws + WW] += torch.einsum("nf,fchw->nchw", g, w)
    dx = dxp[:, :, padding:padding + H, padding:padding + W]
    return dx, dw
