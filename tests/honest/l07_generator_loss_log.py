# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_generator_loss(generator_loss)
# style: -log D(G(z)) directly, with BCELoss's floor
def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    return -torch.clamp(torch.log(d_fake), min=-100.0).mean()
