"""How small `--dry-run` makes each command's work: here, in a module with no imports, so that the pipelines that
shrink the work and the commands whose help states the sizes name the same numbers."""

TRAIN_STEPS = 3  # every trainer (pretrain, train, distill, rerank train)
TRAIN_BATCH = 2
PASSAGES = 64  # encode; and the trainer's passages read
QUERIES = 8  # search, mine
RERANK_QUERIES = 4  # rerank run and score: a forward pass per (query, passage) pair is slow on a CPU
