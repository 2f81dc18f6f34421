"""Training: masked-autoencoder pretraining with Accelerate, fine-tuning recipes for Trainer, and what both use
(optimiser parameter groups, layer-wise learning-rate decay, metrics, mixup)."""
