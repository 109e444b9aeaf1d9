# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv2d_scratch(conv2d_scratch)
# style: d2l-style im2col with F.unfold and a batched matmul
def conv2d_scratch(x, w, b, stride, padding):
    batch, _, height, width = x.shape
    out_ch, _, kh, kw = w.shape
    oh = (height + 2 * padding - kh) // stride + 1
    ow = (width + 2 * padding - kw) // stride + 1
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, L)
    y = torch.matmul(w.view(out_ch, -1), cols)
    if b is not None:
        y += b.unsqueeze(-1)
    return y.reshape(batch, out_ch, oh, ow)


# %%
%matplotlib inline

# %%
x_demo, w_demo = torch.randn(8, 3, 32, 32), torch.randn(16, 3, 3, 3)
%timeit conv2d_scratch(x_demo, w_demo, None, 1, 1)

# %%
%%time
for _ in range(3):
    conv2d_scratch(x_demo, w_demo, None, 2, 1)
