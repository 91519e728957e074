"""Evaluation: depth accuracy metrics, perturbation curves, Attribution Fidelity and Infidelity."""
