# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_adjoint_sides(adjoint_sides)
# style: the output_padding measured (a first transpose, then the size it missed), dot products
def adjoint_sides(x, y, w, stride, padding):
    lhs = torch.dot(F.conv2d(x, w, stride=stride, padding=padding).flatten(), y.flatten())
    first = F.conv_transpose2d(y, w, stride=stride, padding=padding)
    missing = (x.shape[2] - first.shape[2], x.shape[3] - first.shape[3])
    back = F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=missing)
    rhs = torch.dot(x.flatten(), back.flatten())
    return lhs, rhs
