# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv_transpose2d_scratch(conv_transpose2d_scratch)
# style: the adjoint of im2col: columns from a matmul, summed back with F.fold
def conv_transpose2d_scratch(x, w, b, stride, padding):
    N, C_in, H, W = x.shape
    C_out, k = w.shape[1], w.shape[2]
    H_out = (H - 1) * stride - 2 * padding + k
    W_out = (W - 1) * stride - 2 * padding + k
    cols = w.reshape(C_in, C_out * k * k).t() @ x.reshape(N, C_in, H * W)  # (N, C_out*k*k, H*W)
    out = F.fold(cols, (H_out, W_out), kernel_size=k, stride=stride, padding=padding)
    return out if b is None else out + b[:, None, None]
