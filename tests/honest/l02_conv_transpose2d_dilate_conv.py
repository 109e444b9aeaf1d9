# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv_transpose2d_scratch(conv_transpose2d_scratch)
# style: zeros inserted with index_copy-free slicing, kernel rotated, a plain convolution
def conv_transpose2d_scratch(x, w, b, stride, padding):
    k = w.size(-1)
    n, c, h, wd = x.size()
    up = torch.zeros(n, c, stride * (h - 1) + 1, stride * (wd - 1) + 1, dtype=x.dtype, device=x.device)
    up[..., ::stride, ::stride] = x
    pad = k - 1 - padding
    if pad >= 0:
        up = F.pad(up, (pad, pad, pad, pad))
    else:
        up = up[..., -pad:up.shape[-2] + pad, -pad:up.shape[-1] + pad]
    kernel = torch.flip(w, dims=[2, 3]).permute(1, 0, 2, 3).contiguous()
    return F.conv2d(up, kernel, bias=b)
