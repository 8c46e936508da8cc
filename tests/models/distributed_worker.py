"""One process of the multi-worker test (``tests/models/test_distributed.py``): trains ``regression``
on small synthetic data through the shared loop and writes its loss curve as JSON.

Usage: ``python tests/models/distributed_worker.py OUT.json`` (``TF_CONFIG`` set for a worker, unset
for the one-process reference).
"""

import json
import sys

from recommender.models.training import strategy

strategy()  # first: TensorFlow sets up collective ops at start-up

from recommender.models import make_model  # noqa: E402
from recommender.data.synthetic import make_synthetic  # noqa: E402

data = make_synthetic(n_users=80, n_movies=60, n_ratings=2_000, rank=3, seed=0).ratings
model = make_model("regression", dim=4, epochs=4, batch_size=200, learning_rate=0.05,
                   validation=0.0, refit=False).fit(data)
with open(sys.argv[1], "w") as out:
    json.dump({"loss": [row["loss"] for row in model.history[-1].rows],
               "replicas": strategy().num_replicas_in_sync,
               "predictions": model.predict(data["userId"][:50], data["movieId"][:50]).tolist()},
              out)
