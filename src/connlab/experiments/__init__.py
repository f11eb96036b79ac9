"""connlab's experiments, one module per command, listed once in ``REGISTRY``."""

from connlab.experiments.registry import REGISTRY, DemoStep, Experiment, Panel, lecture_order, register, unregister

__all__ = ["REGISTRY", "DemoStep", "Experiment", "Panel", "lecture_order", "register", "unregister"]
