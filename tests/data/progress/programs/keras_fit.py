"""Keras 3 on torch: 64 samples / batch 8 = 8 steps per epoch, 3 epochs = 24 steps.

``python keras_fit.py 2`` fits with ``verbose=2`` (one line per epoch).
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

keras.utils.set_random_seed(0)
x = np.random.rand(64, 4).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(
    x,
    y,
    batch_size=8,
    epochs=3,
    validation_data=(x[:16], y[:16]),
    verbose=int(sys.argv[1]) if sys.argv[1:] else "auto",
)
print("iterations", int(model.optimizer.iterations))
