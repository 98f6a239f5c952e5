"""The solve stage: schedules, the paper's bound and its gradient, and the trust-constr optimiser."""
