"""kdrepro: a reproduction of "Does Knowledge Distillation Really Work?" (Stanton et al., NeurIPS
2021)."""

__version__ = "0.1.0"
