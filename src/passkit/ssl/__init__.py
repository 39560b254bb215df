"""Self-supervised pretraining (MoCo-v2, SwAV, DINO) on passkit shards. Needs the ``train`` extra (torch)."""
