# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv2d_scratch(conv2d_scratch)
# style: Tensor.unfold on both spatial dims, then one tensordot
def conv2d_scratch(x, w, b, stride, padding):
    k = w.shape[-1]
    xp = F.pad(x, [padding] * 4)
    patches = xp.unfold(2, k, stride).unfold(3, k, stride)  # (N, C, H_out, W_out, k, k)
    out = torch.tensordot(patches, w, dims=([1, 4, 5], [1, 2, 3]))  # (N, H_out, W_out, C_out)
    out = out.permute(0, 3, 1, 2)
    if b is not None:
        out = out + b[None, :, None, None]
    return out.contiguous()
