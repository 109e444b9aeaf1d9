# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_train_epoch(train_epoch)
# style: one loop, the scaler handled inline in each update, running sums
def train_epoch(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
    criterion = nn.BCEWithLogitsLoss()
    amp = device.type == "cuda"
    total_D = total_G = 0.0
    batches = 0
    for real in loader:
        real = real.to(device)
        b = real.size(0)
        z = torch.randn(b, nz, 1, 1, device=device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            fake = G(z)
        opt_D.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            logits_real = D(real)
            logits_fake = D(fake.detach())
            loss_D = (criterion(logits_real, torch.ones_like(logits_real))
                      + criterion(logits_fake, torch.zeros_like(logits_fake)))
        if scaler is not None:
            scaler.scale(loss_D).backward()
            scaler.step(opt_D)
        else:
            loss_D.backward()
            opt_D.step()
        opt_G.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            logits = D(fake)
            loss_G = criterion(logits, torch.ones_like(logits))
        if scaler is not None:
            scaler.scale(loss_G).backward()
            scaler.step(opt_G)
            scaler.update()
        else:
            loss_G.backward()
            opt_G.step()
        total_D += loss_D.item()
        total_G += loss_G.item()
        batches += 1
    return {"loss_D": total_D / batches, "loss_G": total_G / batches}
