# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv2d_backward(conv2d_backward)
# style: one strided slice per kernel offset
def conv2d_backward(x, w, grad_out, stride, padding):
    N, C, H, W = x.shape
    K = w.shape[-1]
    Ho, Wo = grad_out.shape[-2:]
    xp = F.pad(x, (padding, padding, padding, padding))
    dxp = torch.zeros_like(xp)
    dw = torch.empty_like(w)
    for a in range(K):
        for c in range(K):
            rows = slice(a, a + stride * (Ho - 1) + 1, stride)
            cols = slice(c, c + stride * (Wo - 1) + 1, stride)
            dw[:, :, a, c] = torch.einsum("nohw,nihw->oi", grad_out, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += torch.einsum("nohw,oi->nihw", grad_out, w[:, :, a, c])
    return dxp[:, :, padding:padding + H, padding:padding + W], dw
