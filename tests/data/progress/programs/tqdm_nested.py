"""Nested tqdm: an outer epoch bar, an inner training bar (20 steps) and an evaluation bar
(5 steps) after each epoch; 3 epochs = 60 training steps."""

import time

from tqdm import tqdm

steps = 0
for epoch in tqdm(range(3), desc="epochs"):
    for _ in tqdm(range(20), desc=f"train {epoch}", leave=False):
        time.sleep(0.02)
        steps += 1
    for _ in tqdm(range(5), leave=False):
        time.sleep(0.02)
print("steps", steps)
