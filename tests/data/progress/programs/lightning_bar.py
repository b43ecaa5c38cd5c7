"""Lightning, 3 epochs x 8 batches = 24 steps, 2 validation batches per epoch.

``python lightning_bar.py tqdm`` uses TQDMProgressBar, ``rich`` RichProgressBar.
"""

import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

torch.manual_seed(0)


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, _index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, _index):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(size: int) -> torch.utils.data.DataLoader:
    x = torch.randn(size, 4)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8
    )


bar = RichProgressBar() if sys.argv[1:] == ["rich"] else TQDMProgressBar()
trainer = L.Trainer(
    max_epochs=3,
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    callbacks=[bar],
    log_every_n_steps=1,
)
trainer.fit(Tiny(), loader(64), loader(16))
print("global_step", trainer.global_step)
