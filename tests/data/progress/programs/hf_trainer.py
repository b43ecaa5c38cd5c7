"""HF Trainer, tiny BERT built from a config (no download), eval_strategy="steps".

60 examples / batch 4 = 15 optimizer steps per epoch, 2 epochs = 30 steps; an
evaluation (160 examples / batch 4 = 40 batches, more than the steps done by then: its bar
must not pass for the training bar) every 10 steps.
"""

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)


class Data(torch.utils.data.Dataset):
    def __init__(self, size: int) -> None:
        self.ids = torch.randint(0, 50, (size, 8))
        self.labels = torch.randint(0, 2, (size,))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


config = BertConfig(
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=16,
)
args = TrainingArguments(
    output_dir="hf-out",
    num_train_epochs=2,
    per_device_train_batch_size=4,
    per_device_eval_batch_size=4,
    eval_strategy="steps",
    eval_steps=10,
    logging_steps=5,
    save_strategy="no",
    report_to="none",
    use_cpu=True,
    seed=0,
)
trainer = Trainer(
    model=BertForSequenceClassification(config),
    args=args,
    train_dataset=Data(60),
    eval_dataset=Data(160),
)
trainer.train()
print("global_step", trainer.state.global_step)
