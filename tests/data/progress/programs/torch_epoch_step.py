"""A plain PyTorch loop printing the common ``Epoch [1/3], Step [10/40], Loss: ...`` line.

160 samples / batch 4 = 40 steps per epoch, 3 epochs = 120 steps, a line every 10 steps.
"""

import torch

torch.manual_seed(0)
x = torch.randn(160, 4)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1)), batch_size=4)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
num_epochs, total_step, steps = 3, len(loader), 0
for epoch in range(num_epochs):
    for i, (inputs, targets) in enumerate(loader):
        loss = torch.nn.functional.mse_loss(model(inputs).squeeze(1), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if (i + 1) % 10 == 0:
            print(
                f"Epoch [{epoch + 1}/{num_epochs}], Step [{i + 1}/{total_step}], "
                f"Loss: {loss.item():.4f}"
            )
print("steps", steps)
