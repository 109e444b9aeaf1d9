# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv_transpose_output_size(conv_transpose_output_size)
# style: the formula from the ConvTranspose2d docs
def conv_transpose_output_size(h, k, s, p, output_padding=0):
    return (h - 1) * s - 2 * p + k + output_padding
