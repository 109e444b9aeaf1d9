# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv2d_scratch(conv2d_scratch)
# style: one strided slice per kernel offset, summed
def conv2d_scratch(x: torch.Tensor, w: torch.Tensor, b, stride: int, padding: int) -> torch.Tensor:
    n, c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (wd + 2 * padding - k) // stride + 1
    xp = torch.zeros(n, c_in, h + 2 * padding, wd + 2 * padding, dtype=x.dtype)
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    out = torch.zeros(n, c_out, h_out, w_out, dtype=x.dtype)
    for di in range(k):
        for dj in range(k):
            sl = xp[:, :, di:di + stride * (h_out - 1) + 1:stride, dj:dj + stride * (w_out - 1) + 1:stride]
            out = out + torch.einsum("nchw,oc->nohw", sl, w[:, :, di, dj])
    return out if b is None else out + b.reshape(1, -1, 1, 1)
