# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv2d_backward(conv2d_backward)
# style: im2col with F.unfold, gradients as matmuls, col2im with F.fold
def conv2d_backward(x, w, grad_out, stride, padding):
    n, c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    cols = F.unfold(x, k, padding=padding, stride=stride)  # (n, c_in*k*k, L)
    g = grad_out.flatten(2)  # (n, c_out, L)
    grad_w = (g @ cols.transpose(1, 2)).sum(0).view_as(w)
    dcols = w.view(c_out, -1).t() @ g  # (n, c_in*k*k, L)
    grad_x = F.fold(dcols, output_size=(h, wd), kernel_size=k, padding=padding, stride=stride)
    return grad_x, grad_w
