"""The benchmark: the exchange path measured side by side with baselines in one run."""
