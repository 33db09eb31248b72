"""Training: one trainer (`trainer.py`, the step loop; `checkpoints.py`, exact resume; `distributed.py`, torchrun;
`train_log.py`, the log and loss plot; `data.py`, the data order) shared by `pretraining/` and `finetuning/`."""
