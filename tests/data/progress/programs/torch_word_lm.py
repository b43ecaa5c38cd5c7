"""A plain PyTorch loop printing pytorch/examples' word_language_model lines.

``| epoch   1 |    20/   60 batches | lr 1.00 | ms/batch ...``: 301 tokens per column,
bptt 5 -> 60 batches per epoch, 3 epochs = 180 optimizer steps, a line every 20 batches.
"""

import math
import time

import torch

torch.manual_seed(0)
ntokens, bptt, log_interval, epochs, lr = 30, 5, 20, 3, 1.0
train_data = torch.randint(0, ntokens, (301, 4))
model = torch.nn.Sequential(torch.nn.Embedding(ntokens, 8), torch.nn.Linear(8, ntokens))
criterion = torch.nn.CrossEntropyLoss()
steps = 0


def train(epoch: int) -> None:
    global steps
    total_loss, start = 0.0, time.time()
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        data, targets = train_data[i : i + bptt], train_data[i + 1 : i + 1 + bptt].reshape(-1)
        model.zero_grad()
        loss = criterion(model(data).view(-1, ntokens), targets)
        loss.backward()
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        steps += 1
        total_loss += loss.item()
        if batch % log_interval == 0 and batch > 0:
            cur_loss = total_loss / log_interval
            elapsed = time.time() - start
            batches, ms = len(train_data) // bptt, elapsed * 1000 / log_interval
            print(
                f"| epoch {epoch:3d} | {batch:5d}/{batches:5d} batches | lr {lr:02.2f} | "
                f"ms/batch {ms:5.2f} | loss {cur_loss:5.2f} | ppl {math.exp(cur_loss):8.2f}"
            )
            total_loss, start = 0.0, time.time()


for epoch in range(1, epochs + 1):
    epoch_start = time.time()
    train(epoch)
    print("-" * 89)
    seconds = time.time() - epoch_start
    print(
        f"| end of epoch {epoch:3d} | time: {seconds:5.2f}s | valid loss {3.3:5.2f} | "
        f"valid ppl {math.exp(3.3):8.2f}"
    )
    print("-" * 89)
print("=" * 89)
print(f"| End of training | test loss {3.3:5.2f} | test ppl {math.exp(3.3):8.2f}")
print("=" * 89)
print("steps", steps)
