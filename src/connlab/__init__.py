"""connlab: a lab for the connections that make deep networks work."""

__version__ = "0.1.0"
