"""LightGBM, 20 boosting rounds, an evaluation line per round (``[12]\tvalid_0's ...``)."""

import lightgbm as lgb
import numpy as np

rng = np.random.default_rng(0)
x = rng.random((200, 4))
y = (x[:, 0] > 0.5).astype(int)
train = lgb.Dataset(x[:150], y[:150])
valid = lgb.Dataset(x[150:], y[150:], reference=train)
params = {"objective": "binary", "num_leaves": 4, "num_threads": 1, "min_data_in_leaf": 5}
booster = lgb.train(
    params, train, num_boost_round=20, valid_sets=[valid], callbacks=[lgb.log_evaluation(1)]
)
print("rounds", booster.current_iteration())
