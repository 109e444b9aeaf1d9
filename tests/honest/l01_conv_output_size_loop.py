# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv_output_size(conv_output_size)
# style: counting the window positions one by one
def conv_output_size(h, k, s, p, d=1):
    span = d * (k - 1) + 1
    padded = h + 2 * p
    count, start = 0, 0
    while start + span <= padded:
        count += 1
        start += s
    return count
