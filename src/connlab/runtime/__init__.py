"""How training and sampling run: speed settings resolved once, the CUDA-graph fast path, CPU memory
reuse, and data parallelism under torchrun. Above the networks and the diffusion maths, below the trainer."""
