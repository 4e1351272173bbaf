"""The service layer: one cycle of a job, status, on-demand provisioning; ports only."""
