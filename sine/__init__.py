"""Few-shot sine-wave regression with Reptile, first-order MAML and MAML (`python -m sine`).

The Reptile paper's case study (section 3, Figure 1) and the 2022 review's experiments on it;
it needs no data. Start at __main__.py, which reads as the experiment's recipe.
"""
