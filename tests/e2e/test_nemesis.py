"""A short nemesis run (kill -9, SIGSTOP and network partitions of nodes, the active controller among them, with an
idempotent acks=all producer on a topic of replication factor 3, a consumer group and topic
churn) against a real three-node cluster: nothing acknowledged is lost, duplicated or
divergent, every replica holds the same batches, and acknowledged metadata changes hold. `scripts/nemesis
--minutes N` runs the long version."""

import random

from nemesis import run


def test_a_short_nemesis_run_loses_duplicates_and_diverges_nothing(tmp_path):
    seed = random.randrange(1 << 30)
    result = run(tmp_path, 45, seed, log=lambda m: print(m, flush=True))
    print(result)
    assert result["acknowledged"] > 1000, result
    assert (result["lost"], result["duplicated"], result["divergent"], result["metadata_lost"]) == (0, 0, 0, 0), \
        f"seed {seed} (replay: scripts/nemesis --minutes 1 --seed {seed}): {result}"
