"""Reptile and first-order MAML for few-shot classification, on TensorFlow 2."""

__version__ = '0.1.0'
