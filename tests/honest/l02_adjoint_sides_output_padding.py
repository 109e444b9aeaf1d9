# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_adjoint_sides(adjoint_sides)
# style: output_padding from the remainder, torch.sum of products
def adjoint_sides(x, y, w, stride, padding):
    k = w.shape[-1]
    oph = (x.shape[-2] + 2 * padding - k) % stride
    opw = (x.shape[-1] + 2 * padding - k) % stride
    left = torch.sum(F.conv2d(x, w, stride=stride, padding=padding) * y)
    right = torch.sum(x * F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=(oph, opw)))
    return left, right
