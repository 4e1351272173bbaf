"""tenant-sync: a self-hosted cross-tenant synchronization worker for Microsoft Entra ID."""

__version__ = "0.1.0"
