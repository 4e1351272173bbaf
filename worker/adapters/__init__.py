"""Adapters: the ports on real infrastructure (Graph, Redis, SQL)."""
