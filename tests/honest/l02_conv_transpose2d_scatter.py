# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv_transpose2d_scratch(conv_transpose2d_scratch)
# style: every input pixel paints a k x k patch of the output (scatter-add), then the padding is cropped
def conv_transpose2d_scratch(x, w, b, stride, padding):
    n, c_in, h, wd = x.shape
    _, c_out, k, _ = w.shape
    full = x.new_zeros(n, c_out, (h - 1) * stride + k, (wd - 1) * stride + k)
    for i in range(h):
        for j in range(wd):
            patch = torch.einsum("nc,cokl->nokl", x[:, :, i, j], w)
            full[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += patch
    H_out = (h - 1) * stride - 2 * padding + k
    W_out = (wd - 1) * stride - 2 * padding + k
    out = full[:, :, padding:padding + H_out, padding:padding + W_out]
    if b is not None:
        out = out + b.view(1, -1, 1, 1)
    return out
