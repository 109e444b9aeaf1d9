# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_conv_transpose_output_size(conv_transpose_output_size)
# style: stretched input (zeros between pixels), then a full convolution
def conv_transpose_output_size(h: int, k: int, s: int, p: int, output_padding: int = 0) -> int:
    stretched = s * (h - 1) + 1
    full = stretched + (k - 1)
    return full - 2 * p + output_padding
