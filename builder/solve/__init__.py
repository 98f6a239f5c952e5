"""The solve stage: schedules, fixed step grids (rules, starts, published tables), the paper's bound and its
gradient, and the trust-constr optimiser."""
