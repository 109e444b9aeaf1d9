# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv_output_size(conv_output_size)
# style: the formula from the PyTorch docs, integer division
def conv_output_size(h, k, s, p, d=1):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1
