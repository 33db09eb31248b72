"""Fine-tuning (`simlm train`, `distill`, `rerank train`): the bi-encoder's and the cross-encoder's losses and the
query groups they learn from. The models themselves are `simlm_cli.models.biencoder` and `.cross_encoder`."""
