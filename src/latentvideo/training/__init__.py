"""Training: the frame GAN (gan), P-NET (projector) and their regularisers."""
