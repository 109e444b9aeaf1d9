# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_to_gan_range(to_gan_range)
# style: isinstance branch, permute by rank, f-string error with !r
def to_gan_range(img):
    t = img if isinstance(img, torch.Tensor) else torch.as_tensor(np.array(img))
    if t.dim() == 3:
        t = t.permute(2, 0, 1)
    elif t.dim() == 4:
        t = t.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3), got shape {tuple(t.shape)!r}")
    return t.float().div(127.5).sub(1.0)
