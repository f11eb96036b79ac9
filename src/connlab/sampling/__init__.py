"""Sampling a trained diffusion run and scoring its samples: the layer above the run folders.

``generate`` loads a ``connlab diffusion train`` run folder (config, EMA weights, decoder) and runs
the samplers of ``connlab.diffusion`` at the resolved speed; ``evaluate`` scores the samples
(``connlab.quality``) and tests the lecture's two sampling claims (``connlab.measures``,
``connlab.evidence``); ``sidebyside`` runs the ladder-vs-DDPM chains and stores them in the run
folder for the report to render.  ``connlab.diffusion`` itself holds the maths and the sampling
pipeline only.
"""
