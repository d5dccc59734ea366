"""tuning-reconciler: Terraform-style plan/apply for Vertex AI tuning jobs."""

__version__ = "0.1.0"
