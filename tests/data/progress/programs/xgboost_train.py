"""XGBoost, 20 boosting rounds with its own evaluation lines (``[12]\teval-logloss:...``)."""

import numpy as np
import xgboost as xgb

rng = np.random.default_rng(0)
x = rng.random((200, 4))
y = (x[:, 0] > 0.5).astype(int)
train, valid = xgb.DMatrix(x[:150], y[:150]), xgb.DMatrix(x[150:], y[150:])
params = {"objective": "binary:logistic", "max_depth": 2, "nthread": 1}
booster = xgb.train(params, train, num_boost_round=20, evals=[(train, "train"), (valid, "eval")])
print("rounds", booster.num_boosted_rounds())
