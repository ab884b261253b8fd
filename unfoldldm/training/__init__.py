"""Training: configs, the on-device crop bank, resumable run state and the two-phase trainer."""
