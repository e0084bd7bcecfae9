"""Object classes learned from a few examples: per-object features and the classifier.

Modules are imported on use.
"""
