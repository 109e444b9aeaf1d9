# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_d_accuracy(d_accuracy)
# style: probabilities first, counted with sum / numel
def d_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[float, float]:
    p_real = torch.sigmoid(real_logits)
    p_fake = torch.sigmoid(fake_logits)
    correct_real = (p_real > 0.5).sum().item()
    correct_fake = (p_fake < 0.5).sum().item()
    return correct_real / real_logits.numel(), correct_fake / fake_logits.numel()
